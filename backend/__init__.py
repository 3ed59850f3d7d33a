"""KoVR backend."""
