"""Subcommands of `kovr` that belong to the backend: serve, migrate, create-user.

Heavy imports (uvicorn, the app, pymongo) stay inside the handlers so `kovr --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import getpass
import logging
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from kovr.settings import Settings

log = logging.getLogger("kovr.serve")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this package's subcommands to the `kovr` parser."""
    serve = sub.add_parser(
        "serve",
        help="웹 앱 실행 (run the web app)",
        description="Run KoVR at http://HOST:PORT. Without KOVR_MONGODB_URI it starts the embedded "
        "database under DATA_DIR/db; without KOVR_MODEL_SERVER_URL it starts the model server.",
    )
    _add_common(serve)
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1, KOVR_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000, KOVR_PORT)")
    serve.add_argument("--workers", type=int, help="web worker processes (default 1, KOVR_WORKERS); they share "
                       "the database and the model server started here")
    serve.add_argument("--no-model", action="store_true", help="do not start the model server")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="데이터베이스 마이그레이션 적용 (apply database migrations)")
    _add_common(migrate)
    migrate.add_argument("--status", action="store_true", help="only show what is applied and pending")
    migrate.set_defaults(func=cmd_migrate)

    create = sub.add_parser("create-user", help="사용자 계정 만들기 (create a user account)")
    _add_common(create)
    create.add_argument("--email", required=True)
    create.add_argument("--display-name", help="default: the part of the email before @")
    create.add_argument("--admin", action="store_true", help="give the account the admin role")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input (else prompt)"
    )
    create.set_defaults(func=cmd_create_user)

    export = sub.add_parser(
        "export-feedback", help="평가된 답변을 학습 데이터로 내보내기 (export rated answers as training data)",
        description="Write DIR/sft.jsonl (KULLM fields), DIR/preference.jsonl and DIR/data_summary.json from "
        "the rated answers of users who consented; PII masked. Train on it: data.sources: [{path: DIR/sft.jsonl}].")
    _add_common(export)
    export.add_argument("--output", type=Path, required=True, help="folder to write (created if missing)")
    export.add_argument("--since", type=_date, help="only answers from this day on, YYYY-MM-DD (UTC)")
    export.add_argument("--min-rating", type=int, default=1, choices=[-1, 0, 1],
                        help="SFT keeps answers rated at least this (default 1: thumbs up)")
    export.set_defaults(func=cmd_export_feedback)


def _date(value: str) -> dt.datetime:
    try:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), tzinfo=dt.UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, help="embedded database, secrets and models (default ~/.local/share/kovr)"
    )


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[Settings]:
    """Settings with a database URI: the configured one, or the embedded SecantusDB started here."""
    if settings.mongodb_uri is not None:
        yield settings
        return
    from pydantic import SecretStr

    from backend.db.embedded import EmbeddedDatabaseError, EmbeddedMongo

    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    server = EmbeddedMongo(settings.db_dir, log_file=logs / "db.log")
    try:
        server.start()
    except EmbeddedDatabaseError as exc:  # e.g. another kovr holds this data folder
        print(f"kovr: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    try:
        # Retryable writes off: the embedded server keeps and scans a record of each one (issue 38).
        yield settings.model_copy(update={"mongodb_uri": SecretStr(server.uri), "mongodb_retry_writes": False})
    finally:
        server.stop()


@contextlib.contextmanager
def model_server(settings: Settings, enabled: bool) -> Iterator[Settings]:
    """Settings with a model server URL: the configured one, or model_server started here."""
    if settings.model_server_url is not None or not enabled:
        yield settings
        return
    import importlib.util

    if importlib.util.find_spec("model_server.launcher") is None:
        log.warning("model_server.launcher is not installed; starting without a model")
        yield settings
        return
    from model_server.launcher import ModelServerProcess

    with ModelServerProcess(settings) as proc:
        yield settings.model_copy(update={"model_server_url": proc.url})


def _database_answers(settings: Settings) -> bool:
    """A quick ping before serving, so a wrong URI is one line rather than a start-up traceback."""
    from backend.db.embedded import database_answers

    assert settings.mongodb_uri is not None
    return database_answers(settings.mongodb_uri.get_secret_value(), timeout_ms=5000)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def cmd_serve(args: argparse.Namespace) -> int:
    from backend.core.logging import configure_logging
    from backend.core.secrets import ensure_jwt_secret
    from kovr.cli import settings_from_args

    settings = ensure_jwt_secret(settings_from_args(args))
    configure_logging(settings.log_level)
    # uvicorn re-raises the signal it stopped on; SIGTERM must unwind the `with` blocks below so the
    # embedded database and model server stop too (SIGINT already does, as KeyboardInterrupt).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with database(settings) as settings:
        if not _database_answers(settings):
            print("kovr: 데이터베이스에 연결할 수 없습니다 (database not reachable)", file=sys.stderr)
            return 1
        with model_server(settings, not args.no_model) as settings:
            if settings.workers > 1:
                return _run_workers(settings)
            return 0 if _run_web_app(settings) else 3


def _run_web_app(settings: Settings) -> bool:
    """Serve until SIGINT/SIGTERM; False when the server never started (uvicorn logged why, e.g. the
    port is taken)."""
    import uvicorn

    from backend.app import create_app
    from backend.server import server_config

    app = create_app(settings)
    print(f"KoVR: http://{settings.host}:{settings.port}", file=sys.stderr, flush=True)
    server = uvicorn.Server(server_config(app, settings))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the SIGINT it stopped on: a clean exit
        server.run()
    return server.started


def _run_workers(settings: Settings) -> int:
    """`--workers N`: the workers get this process's final settings (the database and model server
    started here included) through their environment."""
    import os

    from backend.server import run_workers
    from kovr.settings import worker_environment

    os.environ.update(worker_environment(settings))
    print(f"KoVR: http://{settings.host}:{settings.port} ({settings.workers} workers)", file=sys.stderr, flush=True)
    run_workers(settings)
    return 0


async def _migrate(uri: str, db_name: str, status_only: bool) -> int:
    from backend.db.client import open_client
    from backend.db.migrate import apply_migrations, discover, migration_status

    client = open_client(uri)
    try:
        db = client[db_name]
        if status_only:
            report = await migration_status(db)
            pending = [m.name for m in discover() if m.name not in report.already]
            print(f"applied: {', '.join(report.already) or '-'}\npending: {', '.join(pending) or '-'}")
        else:
            report = await apply_migrations(db)
            print(f"applied now: {', '.join(report.applied) or '-'} (already applied: {len(report.already)})")
    finally:
        await client.close()
    for name in report.changed:
        print(
            f"warning: migration {name} was edited after it was applied (checksum differs)", file=sys.stderr
        )
    for name in report.unknown:
        print(f"warning: migration {name} is recorded in the database but missing here", file=sys.stderr)
    return 1 if report.changed or report.unknown else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from kovr.cli import settings_from_args

    with database(settings_from_args(args)) as settings:
        assert settings.mongodb_uri is not None
        return asyncio.run(
            _migrate(settings.mongodb_uri.get_secret_value(), settings.mongodb_db, args.status)
        )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("비밀번호 (password): ")
    if first != getpass.getpass("비밀번호 확인 (again): "):
        raise ValueError("두 비밀번호가 다릅니다 (the passwords differ)")
    return first


async def _create_user(
    uri: str, db_name: str, email: str, password: str, name: str, admin: bool, first_admin: bool = False
) -> tuple[str, str]:
    """The new account's id and role (`first_admin`: the first account of the database is an admin)."""
    from backend.db.client import open_client
    from backend.db.migrate import apply_migrations
    from backend.services.auth import signup

    client = open_client(uri)
    try:
        db = client[db_name]
        await apply_migrations(db)
        user = await signup(
            db=db, email=email, password=password, display_name=name, role="admin" if admin else "user",
            first_admin=first_admin,
        )
        return str(user["_id"]), str(user["role"])
    finally:
        await client.close()


def cmd_create_user(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from backend.core.errors import AppError
    from backend.schemas.users import UserCreate
    from kovr.cli import settings_from_args

    try:
        raw_password = _read_password(args.password_stdin)
        body = UserCreate(
            email=args.email,
            password=raw_password,
            display_name=args.display_name or args.email.split("@")[0],
        )
    except (ValueError, ValidationError) as exc:
        fields = (
            ", ".join(str(e["loc"][0]) for e in exc.errors())
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        print(f"kovr: 입력값이 올바르지 않습니다 (invalid input): {fields}", file=sys.stderr)
        return 2
    with database(settings_from_args(args)) as settings:
        assert settings.mongodb_uri is not None
        try:
            user_id, role = asyncio.run(
                _create_user(
                    settings.mongodb_uri.get_secret_value(),
                    settings.mongodb_db,
                    body.email,
                    body.password,
                    body.display_name,
                    args.admin,
                    settings.first_user_admin,
                )
            )
        except AppError:
            print(f"kovr: 이미 가입된 이메일입니다 (email taken): {body.email}", file=sys.stderr)
            return 1
    print(f"created {body.email} ({role}) id={user_id}")
    return 0


async def _export_feedback(uri: str, db_name: str, output: Path, since: dt.datetime | None, min_rating: int) -> str:
    from backend.db.client import open_client
    from backend.services.feedback_export import ExportOptions, build_export, write_export

    client = open_client(uri)
    try:
        export = await build_export(client[db_name], ExportOptions(since=since, min_rating=min_rating))
    finally:
        await client.close()
    write_export(export, output)
    files, dropped = export.summary["files"], export.summary["dropped"]
    return (f"{output}: sft.jsonl {files['sft.jsonl']}, preference.jsonl {files['preference.jsonl']} "
            f"(dropped: {', '.join(f'{k} {v}' for k, v in dropped.items())})")


def cmd_export_feedback(args: argparse.Namespace) -> int:
    from kovr.cli import settings_from_args

    with database(settings_from_args(args)) as settings:
        assert settings.mongodb_uri is not None
        print(asyncio.run(_export_feedback(settings.mongodb_uri.get_secret_value(), settings.mongodb_db,
                                           args.output, args.since, args.min_rating)))
    return 0
