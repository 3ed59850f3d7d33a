"""Use cases shared by the API routes and the server-rendered pages (no HTTP types here)."""
