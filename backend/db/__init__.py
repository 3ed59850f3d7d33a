"""Database access: the client, embedded server and repository functions."""
