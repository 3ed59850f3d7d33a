"""Subcommands of `kovr` that belong to visual reasoning: vr-data, finetune-vr, eval-vr.

Heavy imports (torch, transformers) stay inside the handlers so `kovr --help` stays light.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add this package's subcommands to the `kovr` parser."""
    data = sub.add_parser(
        "vr-data", help="합성 한국어 시각 추론 데이터 생성 (write a synthetic Korean visual-reasoning set)",
        description="CLEVR 같은 도형 그림과 한국어 질문/답을 만듭니다 (scenes + Korean QA, seeded).",
    )
    data.add_argument("--output", required=True, type=Path, help="output folder")
    data.add_argument("--count", required=True, type=int, help="number of scenes (train + test)")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--image-size", type=int, default=64, help="pixels per side (default 64)")
    data.add_argument("--test-fraction", type=float, default=0.2, help="held-out scenes (default 0.2)")
    data.add_argument("--grid", type=int, default=4,
                      help="objects in cells of a GRIDxGRID layout (default 4; 0: anywhere)")
    data.add_argument("--train-questions", default="", metavar="TYPE=N,...",
                      help="questions of these types per training scene, e.g. relation=8 (default 1 each)")
    data.add_argument("--reasoned-relations", action="store_true",
                      help="yes/no relation answers name the further object first "
                           "(\"초록색 네모가 더 왼쪽에 있으므로 아니요\"); scored by the verdict")
    data.add_argument("--varied-wordings", action="store_true",
                      help="reword about 40%% of the training questions (a word in front, another noun in \"which "
                           "one\") so that the names move; the test split is unchanged")
    data.add_argument("--varied-nouns", action="store_true",
                      help="another noun for \"도형\" (것, 물체) in half of the shape and count training questions, "
                           "so that the word does not make a question a shape question; the test split is unchanged")
    data.set_defaults(func=_vr_data)

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


def _vr_data(args: argparse.Namespace) -> int:
    from finetune.vr.synthetic import generate

    try:
        summary = generate(args.output, args.count, args.seed, image_size=args.image_size,
                           test_fraction=args.test_fraction, grid=args.grid,
                           train_questions=parse_type_counts(args.train_questions),
                           reasoned=args.reasoned_relations, varied=args.varied_wordings,
                           varied_nouns=args.varied_nouns)
    except ValueError as exc:
        print(f"kovr vr-data: {exc}", file=sys.stderr)
        return 2
    print(f"장면 scenes: {summary.scenes}; 질문 questions: {summary.questions} -> {summary.output}")
    return 0


def parse_type_counts(text: str) -> dict[str, int]:
    """"relation=8,count=2" -> {"relation": 8, "count": 2} (types are checked by the generator)."""
    counts: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"--train-questions {part!r}: write TYPE=N, e.g. relation=8")
        counts[name.strip()] = int(value)
    return counts


def _finetune_vr(args: argparse.Namespace) -> int:
    from finetune.config import ConfigError, load_config
    from finetune.sources import DataError
    from finetune.vr.config import VRConfig

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
    from finetune.vr.checkpoint import evaluate_checkpoint

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
