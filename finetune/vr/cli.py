"""Subcommands of `kovr` that train and evaluate the align model: finetune-vr, eval-vr.

(`kovr vr-data`, the synthetic set, is registered by research/vr/cli.py.)

Heavy imports (torch, transformers) stay inside the handlers so `kovr --help` stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this package's subcommands to the `kovr` parser."""
    train = sub.add_parser(
        "finetune-vr", help="정렬 모델 학습 (train the align model: stage 1 or 2)",
        description="Stage 1: projector on image-caption pairs. Stage 2: projector + LoRA on VQA + text.",
    )
    train.add_argument("config", type=Path, help="YAML configuration (see finetune/vr/configs/)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting, e.g. --set train.max_steps=100 (repeatable)")
    train.set_defaults(func=_finetune_vr)

    ev = sub.add_parser(
        "eval-vr", help="질문 유형별 정확도 (answer accuracy by question type)",
        description="Answers held-out questions and prints accuracy by type as a table and JSON.",
    )
    ev.add_argument("checkpoint", type=Path, help="align checkpoint folder (or a finetune-vr run folder)")
    ev.add_argument("--data", required=True, type=Path, help="a vr-data folder (its test split) or a VQA JSONL")
    ev.add_argument("--split", default="test", help="split of a vr-data folder (default test)")
    ev.add_argument("--max", type=int, default=None, help="evaluate at most this many questions")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--images", choices=("auto", "on", "off"), default="auto",
                    help="auto: as the checkpoint was trained (off for the text-only baseline)")
    ev.add_argument("--json", type=Path, default=None, help="also write the result JSON here")
    ev.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ev.set_defaults(func=_eval_vr)


def _finetune_vr(args: argparse.Namespace) -> int:
    from finetune.sources import DataError
    from finetune.vr.config import VRConfig
    from finetune.yaml_config import ConfigError, load_config

    try:
        cfg = load_config(VRConfig, args.config, args.overrides)
    except ConfigError as exc:
        print(f"kovr finetune-vr: {exc}", file=sys.stderr)
        return 2
    from finetune.loop import TrainingDiverged
    from finetune.vr.train import run_finetune_vr

    try:
        run_finetune_vr(cfg)
    except (ConfigError, DataError, ValueError, FileNotFoundError, TrainingDiverged) as exc:
        print(f"kovr finetune-vr: {exc}", file=sys.stderr)
        return 2
    return 0


def _eval_vr(args: argparse.Namespace) -> int:
    from finetune.sources import DataError
    from finetune.vr.evaluate import evaluate_checkpoint

    try:
        result, table = evaluate_checkpoint(
            args.checkpoint, args.data, split=args.split, limit=args.max, batch_size=args.batch_size,
            images=args.images, threads=args.threads,
        )
    except (DataError, ValueError, FileNotFoundError) as exc:
        print(f"kovr eval-vr: {exc}", file=sys.stderr)
        return 2
    print(table)
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0
