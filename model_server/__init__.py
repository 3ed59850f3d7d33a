"""KoVR model_server."""
