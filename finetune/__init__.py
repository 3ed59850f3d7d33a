"""KoVR finetune."""
