"""KoVR: Korean LLM chat with visual reasoning."""

__version__ = "0.1.0"
