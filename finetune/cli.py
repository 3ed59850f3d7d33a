"""`kovr finetune`, `kovr merge` and `kovr demo-model` (torch and transformers load inside the handlers only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this package's subcommands to the `kovr` parser."""
    ft = sub.add_parser(
        "finetune",
        help="LoRA 미세조정 (LoRA instruction tuning of Polyglot-ko)",
        description="LoRA 미세조정: 설정 파일 하나로 학습합니다 (LoRA instruction tuning from one YAML config).",
    )
    ft.add_argument("config", type=Path, help="YAML 설정 파일 (e.g. finetune/configs/tiny-cpu.yaml)")
    ft.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="설정 덮어쓰기 (override), e.g. --set train.max_steps=20 --set run.output_dir=runs/x",
    )
    ft.add_argument("--check", action="store_true", help="설정만 검증하고 종료 (validate the config and exit)")
    ft.set_defaults(func=finetune_command)

    mg = sub.add_parser(
        "merge",
        help="LoRA 어댑터 병합 (merge a run's adapter into its base for TGI / model_server)",
        description="어댑터를 기본 모델에 병합하여 TGI와 model_server가 바로 읽는 폴더를 만듭니다.",
    )
    mg.add_argument("run_dir", type=Path, help="kovr finetune 실행 폴더 (a run folder)")
    mg.add_argument("--output", type=Path, required=True, help="병합된 모델 폴더 (output folder)")
    mg.add_argument("--dtype", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                    help="저장 정밀도 (saved precision); auto: the base model's")
    mg.add_argument("--tolerance", type=float, default=None,
                    help="병합 전후 logits 허용 오차 (max abs difference allowed)")
    mg.add_argument("--no-check", action="store_true", help="logits 비교 생략 (skip the equivalence check)")
    mg.set_defaults(func=merge_command)

    demo = sub.add_parser(
        "demo-model",
        help="작은 한국어 데모 모델 만들기 (build the small Korean demo model on CPU)",
        description="Train a byte-level BPE tokenizer and a small GPT-NeoX on Korean instructions "
        "(the repository's own set, plus ../shared/data when present) within a few minutes on CPU.",
    )
    demo.add_argument("--output", type=Path, help="folder to write (default DATA_DIR/models/demo)")
    demo.add_argument("--data-dir", type=Path, help="default ~/.local/share/kovr")
    demo.add_argument("--minutes", type=float, default=4.5, help="time budget for the whole build (default 4.5)")
    demo.add_argument("--no-shared-data", action="store_true", help="use only the repository's own Korean set")
    demo.set_defaults(func=cmd_demo_model)


def _fail(message: str) -> int:
    print(f"kovr: {message}", file=sys.stderr)
    return 2


def finetune_command(args: argparse.Namespace) -> int:
    from finetune.finetune_config import FinetuneConfig
    from finetune.sources import DataError
    from finetune.yaml_config import ConfigError, load_config

    try:
        cfg = load_config(FinetuneConfig, args.config, args.overrides)
    except ConfigError as exc:
        return _fail(str(exc))
    if args.check:
        print(f"설정 확인 완료 (configuration OK): {args.config}")
        return 0
    from finetune.checkpoint import CheckpointError
    from finetune.loop import TrainingDiverged
    from finetune.train import run_finetune

    try:
        run_finetune(cfg)
    except (ConfigError, DataError, CheckpointError, TrainingDiverged) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print(f"\n중단됨 (interrupted); 같은 명령으로 이어서 학습합니다 (rerun to resume): {cfg.run.output_dir}",
              file=sys.stderr)
        return 130
    return 0


def merge_command(args: argparse.Namespace) -> int:
    from finetune.merge import MergeError, merge_run

    try:
        report = merge_run(args.run_dir, args.output, dtype=args.dtype, tolerance=args.tolerance,
                           check=not args.no_check)
    except MergeError as exc:
        return _fail(str(exc))
    diff = report.get("max_abs_logit_diff")
    checked = (
        f"; logits max |Δ| {diff:.2e} (relative {report['relative_logit_diff']:.1e} ≤ {report['tolerance']:.0e})"
        if diff is not None else ""
    )
    print(f"병합 완료 (merged): {args.output}{checked}")
    return 0


def cmd_demo_model(args: argparse.Namespace) -> int:
    from finetune.demo_model import DemoConfig, build_demo_model
    from kovr.settings import load_settings

    settings = load_settings(**({"data_dir": args.data_dir} if args.data_dir is not None else {}))
    output = args.output or settings.demo_model_dir
    shared = None if args.no_shared_data else settings.shared_data_dir
    meta = build_demo_model(output, shared_data_dir=shared, config=DemoConfig(time_budget_s=args.minutes * 60))
    print(f"데모 모델 저장됨 (demo model saved): {output}")
    print(f"held-out loss {meta['heldout_loss']} (perplexity {meta['heldout_perplexity']}), "
          f"{meta['train_steps']} steps")
    for sample in meta["samples"]:
        print(f"  Q: {sample['instruction']}\n  A: {sample['answer']}")
    return 0
