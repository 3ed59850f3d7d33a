"""Numbered, hand-written database migrations (NNNN_name.py with `async def up(db)`)."""
