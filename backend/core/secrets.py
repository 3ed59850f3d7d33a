"""The JWT key: from settings, or (development/test only) generated once and kept under data_dir/secrets."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from kovr.settings import Settings


def secret_file(settings: Settings) -> Path:
    return settings.data_dir / "secrets" / "jwt_secret"


def ensure_jwt_secret(settings: Settings) -> Settings:
    """Settings with a JWT key; production must bring its own (the settings validator enforces it)."""
    if settings.jwt_secret is not None:
        return settings
    path = secret_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: two processes starting at once must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    value = path.read_text().strip()
    if len(value) < 32:
        raise RuntimeError(f"JWT secret in {path} is too short; delete the file to make a new one")
    return settings.model_copy(update={"jwt_secret": SecretStr(value)})


def jwt_key(settings: Settings) -> str:
    if settings.jwt_secret is None:
        raise RuntimeError("no JWT secret: build the app with ensure_jwt_secret(settings)")
    return settings.jwt_secret.get_secret_value()
