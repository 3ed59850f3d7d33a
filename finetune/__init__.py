"""KoVR fine-tuning: LoRA instruction tuning of Polyglot-ko (`kovr finetune`) and merging (`kovr merge`).

Generic pieces, reused by finetune/vr: config (typed YAML + --set), metrics (JSONL, progress bar,
loss curve), checkpoint (save/resume), optim (AdamW + schedules), loop (the training loop).
Text-specific: run_config, sources, cleaning, data, batching, objective, modeling, evaluate,
train, merge. See finetune/README.md.
"""
