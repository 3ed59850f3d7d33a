"""Infrastructure shared by the backend: security, errors, text limits, logging, time."""
