"""The one settings object for every KoVR process (web app, model server, training CLI).

Built once at start-up with :func:`load_settings` and passed down explicitly; nothing else in
the code base reads the environment. Every field can be set as ``KOVR_<FIELD>`` (or in ``.env``).
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """Per-user data directory: embedded database, generated secrets, built models."""
    return Path.home() / ".local" / "share" / "kovr"


class SettingsError(RuntimeError):
    """Settings could not be built; the message is one line meant for the operator."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KOVR_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- process / profile -------------------------------------------------------------------
    profile: Literal["development", "production", "test"] = "development"
    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="web worker processes of `kovr serve`")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    public_url: str | None = None  # e.g. https://kovr.example.com; https turns on Secure cookies and HSTS
    # Other origins whose pages may send cookie-authenticated writes (comma-separated, e.g. a second
    # host name); with neither this nor public_url, the request's own Host is the one origin.
    allowed_origins: str = ""
    # Secure + __Host- cookies; unset: on exactly when public_url is https.
    cookie_secure: bool | None = None
    hsts_max_age_s: int = Field(default=31_536_000, ge=0, description="HSTS max-age when served over https")
    # uvicorn's cap on one request's header block (h11), against multi-megabyte headers.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    # Reverse proxies whose X-Forwarded-For / -Proto headers are believed: addresses or networks,
    # comma-separated, or "*". Rate limits count the client address those headers name; from any
    # other sender they are ignored, so a client cannot pick its own address.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    default_locale: Literal["ko", "en"] = "ko"

    # --- database ----------------------------------------------------------------------------
    # Unset: `kovr serve` starts the embedded SecantusDB under data_dir/db on 127.0.0.1.
    mongodb_uri: SecretStr | None = None
    mongodb_db: str = Field(default="kovr", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # pymongo's retryable writes (MongoDB's default). `kovr serve` turns them off for its embedded
    # SecantusDB, which keeps and scans every retryable write's record for 30 minutes (issue 38).
    mongodb_retry_writes: bool = True

    # --- auth --------------------------------------------------------------------------------
    # Unset in development: generated once and persisted under data_dir/secrets.
    jwt_secret: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # How long a worker trusts a credential it checked (backend/services/auth_cache.py): changes made
    # by another worker or directly in the database are seen within this many seconds; 0: always look up.
    auth_cache_s: float = Field(default=2.0, ge=0, le=60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)
    # Sign-in limits (backend/services/ratelimit.py, docs/security.md): per account and address,
    # per account from all addresses (a much higher ceiling), per address over all accounts.
    login_rate_limit: int = Field(default=10, ge=1, description="failed logins per account and address per window")
    login_rate_limit_account: int = Field(default=100, ge=1, description="failed logins per account per window")
    login_rate_window_s: int = Field(default=300, ge=1)
    login_rate_limit_address: int = Field(default=50, ge=1, description="failed logins per client address per window")
    signup_rate_limit_address: int = Field(default=20, ge=1, description="sign-ups per client address per window")
    signup_rate_window_s: int = Field(default=3600, ge=1)
    refresh_reuse_grace_s: int = Field(default=10, ge=0, description="browser tabs racing to refresh one cookie")
    # The first account created (sign-up or create-user) gets the admin role: a fresh install needs no CLI.
    first_user_admin: bool = False

    # --- input limits ------------------------------------------------------------------------
    max_message_chars: int = Field(default=8000, ge=1)
    max_title_chars: int = Field(default=200, ge=1)
    max_display_name_chars: int = Field(default=64, ge=1)
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=4096 * 4096, ge=1)
    chat_rate_limit: int = Field(default=30, ge=1, description="messages per user per minute")
    upload_rate_limit: int = Field(default=20, ge=1, description="image uploads per user per window")
    upload_rate_window_s: int = Field(default=60, ge=1)
    image_quota_bytes: int = Field(default=200 * 1024 * 1024, ge=0, description="stored image bytes per user")
    # Daily quotas per user (UTC days; 0 = unlimited); an admin can set other values for one user.
    quota_tokens_per_day: int = Field(default=0, ge=0, description="generated tokens per user per UTC day")
    quota_messages_per_day: int = Field(default=0, ge=0, description="answers per user per UTC day")
    # Uploaded images never sent in a message are deleted after this long.
    unattached_image_retention_s: int = Field(default=24 * 3600, ge=60)

    # --- model (web app side) ----------------------------------------------------------------
    # A running model_server or stock TGI; unset: `kovr serve` starts model_server itself.
    model_server_url: str | None = None
    model_server_timeout_s: float = Field(default=120.0, gt=0)
    # Shared secret between the web app and model_server: the app sends it, the server (when it is
    # set) refuses requests without it. Both read this one setting; the compose stack sets it.
    model_server_token: SecretStr | None = None

    # --- chat (backend/chat) -----------------------------------------------------------------
    # Longest silence between two streamed tokens before the answer is ended as a timeout.
    chat_stall_timeout_s: float = Field(default=60.0, gt=0)
    chat_default_max_new_tokens: int = Field(default=512, ge=1)
    chat_max_images_per_message: int = Field(default=4, ge=0)
    # A crash loses at most this much of an answer's text (plus one write): saves are coalesced,
    # at most one in flight per answer.
    chat_save_interval_s: float = Field(default=0.5, gt=0, description="how often a streaming answer is saved")
    # Periodic saves per second per worker, all answers together: with many answers at once the
    # interval stretches (up to the lease heartbeat) instead of the database falling behind.
    # 0 = no budget. bench/bench_chat_load.py measures the database's cost per answer.
    chat_saves_per_s: float = Field(default=40.0, ge=0)
    # A worker renews the lease of each answer it generates every chat_lease_s / 4; an answer whose
    # lease ran out (its worker died) is settled as interrupted, its text kept.
    chat_lease_s: float = Field(default=8.0, gt=0)
    chat_follow_recheck_s: float = Field(default=2.0, gt=0, description="re-read a followed answer this often")
    chat_follow_poll_s: float = Field(default=0.25, gt=0, description="poll interval without change streams")
    chat_keepalive_s: float = Field(default=15.0, gt=0, description="SSE keep-alive comment interval")

    # --- model_server ------------------------------------------------------------------------
    # Hub id or local folder of a causal LM; unset: the demo model under data_dir/models/demo.
    model: str | None = None
    model_revision: str | None = None
    adapter: str | None = None  # peft LoRA adapter folder, applied at load
    merge_adapter: bool = True
    vr_checkpoint: str | None = None  # align-model folder (vision encoder + projector)
    tgi_upstream_url: str | None = None  # forward text-only requests to a real TGI
    model_server_host: str = "127.0.0.1"
    model_server_port: int = Field(default=8080, ge=1, le=65535)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_concurrent_requests: int = Field(default=8, ge=1)
    max_queue: int = Field(default=64, ge=0)
    max_batch_size: int = Field(default=8, ge=1)
    max_input_tokens: int = Field(default=1536, ge=1)
    max_total_tokens: int = Field(default=2048, ge=2)
    max_new_tokens_limit: int = Field(default=1024, ge=1)
    torch_threads: int | None = Field(default=None, ge=1)
    # Benchmarks only: never end on EOS, so every request decodes exactly max_new_tokens.
    ignore_eos: bool = False
    # KV cache of the running batch: "static" preallocates max_concurrent_requests x max_total_tokens
    # (rows join and leave without copying each other; needed for CUDA graphs), "dynamic" grows and is
    # rebuilt as rows come and go; "auto": static on CUDA, dynamic on the CPU (docs/model-server.md).
    kv_cache: Literal["auto", "static", "dynamic"] = "auto"
    # Static cache on CUDA: capture the decode step in CUDA graphs for these batch sizes (a step pads up
    # to the next one; max_concurrent_requests is always added); empty or cuda_graphs off: eager.
    cuda_graphs: bool = True
    cuda_graph_batch_sizes: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    # Prompts with images are prefilled in groups with text prompts; false: each alone (the engine
    # before issue 43, for benchmarks' before/after runs).
    batch_image_prefill: bool = True

    # --- data --------------------------------------------------------------------------------
    # Korean data beside the repository (absent on a user's clone); demos and CPU runs add it when present.
    shared_data_dir: Path = Field(default_factory=lambda: _REPO_ROOT.parent / "shared" / "data")

    @field_validator("model_server_token", mode="before")
    @classmethod
    def _blank_token(cls, value: object) -> object:
        """`KOVR_MODEL_SERVER_TOKEN=` (left empty in .env) means no token, not an empty one."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return None if isinstance(text, str) and not text.strip() else value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str) -> str:
        entries = [e.strip() for e in value.split(",") if e.strip()]
        if entries == ["*"]:
            return "*"
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 172.18.0.1 or 172.16.0.0/12)"
                ) from None
        return ",".join(entries)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.max_input_tokens >= self.max_total_tokens:
            raise ValueError("max_input_tokens must be smaller than max_total_tokens")
        if self.profile == "production":
            if self.jwt_secret is None or len(self.jwt_secret.get_secret_value()) < 32:
                raise ValueError("production needs KOVR_JWT_SECRET of at least 32 characters")
            if self.mongodb_uri is None:
                raise ValueError("production needs KOVR_MONGODB_URI (no embedded database)")
        return self

    @property
    def served_over_https(self) -> bool:
        return bool(self.public_url and self.public_url.lower().startswith("https://"))

    @property
    def secure_cookies(self) -> bool:
        return self.served_over_https if self.cookie_secure is None else self.cookie_secure

    def allowed_origin_list(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "db"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def demo_model_dir(self) -> Path:
        return self.models_dir / "demo"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; invalid values become one clear line instead of a traceback."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"KOVR_{'_'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None


WORKER_SETTINGS_ENV = "KOVR_WORKER_SETTINGS"


def worker_environment(settings: Settings) -> dict[str, str]:
    """The parent's final settings (database and model server it started included) for its web
    worker processes, which read them back with `worker_settings` instead of rebuilding them."""
    values = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in ((name, getattr(settings, name)) for name in Settings.model_fields)
    }
    return {WORKER_SETTINGS_ENV: json.dumps(values, default=str)}


def worker_settings() -> Settings:
    """In a web worker started by `kovr serve --workers N`: exactly the parent's settings."""
    raw = os.environ.get(WORKER_SETTINGS_ENV)
    if raw is None:
        raise SettingsError(f"{WORKER_SETTINGS_ENV} is not set: web workers are started by `kovr serve`")
    return load_settings(**json.loads(raw))
