"""The one `kovr` command. Each part of the project registers its own subcommands.

Subcommand modules keep heavy imports (torch, transformers) inside their handlers so that
`kovr --help` and the web app start without them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kovr import __version__
from kovr.settings import Settings, SettingsError, load_settings

# Modules that expose `register(subparsers)`; order is the order in `kovr --help`. This is the one
# place that names every package (by string, loaded here): the composition root of the command.
COMMAND_MODULES = ("backend.cli", "model_server.cli", "finetune.cli", "finetune.vr.cli")
# Registered when their package is there: a source checkout has evalchat/ and research/, the images
# (docker/) do not.
OPTIONAL_COMMAND_MODULES = ("evalchat.cli", "research.vr.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kovr", description="KoVR: 한국어 LLM 채팅 (Korean LLM chat)")
    parser.add_argument("--version", action="version", version=f"kovr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES + OPTIONAL_COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if module_name not in OPTIONAL_COMMAND_MODULES or exc.name != module_name.split(".")[0]:
                raise
            continue
        module.register(sub)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with the command line's explicit options on top."""
    overrides = {
        key: value
        for key in ("host", "port", "data_dir", "workers")
        if (value := getattr(args, key, None)) is not None
    }
    return load_settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except SettingsError as exc:
        print(f"kovr: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
