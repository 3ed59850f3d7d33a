"""Streaming chat: prompt building, the model client, background generations and their fan-out."""
