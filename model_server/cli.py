"""The `kovr model-server` subcommand (the demo model is built by `kovr demo-model`, in finetune).

Heavy imports (torch, transformers, uvicorn) stay inside the handlers so `kovr --help` is fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kovr.settings import Settings, load_settings

# command-line option -> settings field
_OPTIONS = {
    "host": "model_server_host",
    "port": "model_server_port",
    "model": "model",
    "adapter": "adapter",
    "vr": "vr_checkpoint",
    "upstream": "tgi_upstream_url",
    "data_dir": "data_dir",
    "device": "device",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this package's subcommands to the `kovr` parser."""
    serve = sub.add_parser(
        "model-server",
        help="TGI 호환 모델 서버 실행 (run the TGI-compatible model server)",
        description="Serve a causal LM over the Text Generation Inference HTTP API. Every other limit "
        "is a setting (KOVR_MAX_CONCURRENT_REQUESTS, KOVR_MAX_QUEUE, KOVR_MAX_INPUT_TOKENS, ...).",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1, KOVR_MODEL_SERVER_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8080, KOVR_MODEL_SERVER_PORT)")
    serve.add_argument("--model", help="hub id or folder of a causal LM (default: the demo model, KOVR_MODEL)")
    serve.add_argument("--adapter", help="peft LoRA adapter folder, merged at load (KOVR_ADAPTER)")
    serve.add_argument("--vr", help="vision-align checkpoint folder: enables images (KOVR_VR_CHECKPOINT)")
    serve.add_argument("--upstream", help="forward text-only requests to this TGI URL (KOVR_TGI_UPSTREAM_URL)")
    serve.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto (KOVR_DEVICE)")
    serve.add_argument("--data-dir", type=Path, help="where the demo model lives (default ~/.local/share/kovr)")
    serve.set_defaults(func=cmd_model_server)


def settings_from_options(args: argparse.Namespace) -> Settings:
    """Environment settings with this command's explicit options on top."""
    overrides = {
        field: value for option, field in _OPTIONS.items() if (value := getattr(args, option, None)) is not None
    }
    return load_settings(**overrides)


def cmd_model_server(args: argparse.Namespace) -> int:
    settings = settings_from_options(args)
    needs_demo = not (settings.model or settings.vr_checkpoint or settings.tgi_upstream_url)
    if needs_demo and not (settings.demo_model_dir / "config.json").is_file():
        # Checked before torch is imported: a missing model is one clear line, at once.
        print(
            f"kovr model-server: 데모 모델이 없습니다 (no demo model at {settings.demo_model_dir}); "
            "run `kovr demo-model` or pass --model / set KOVR_MODEL",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from model_server.app import create_model_app

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_model_app(settings)
    uvicorn.run(app, host=settings.model_server_host, port=settings.model_server_port, log_level="info")
    return 0
