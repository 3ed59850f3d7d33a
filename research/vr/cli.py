"""`kovr vr-data` (the synthetic Korean visual-reasoning set, with the flags a user needs) and
``python -m research.vr.cli`` (the same, with the experiment switches the proof's recipes use).

Heavy imports stay inside the handler so that `kovr --help` stays light.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `kovr vr-data` to the `kovr` parser."""
    data = sub.add_parser(
        "vr-data", help="합성 한국어 시각 추론 데이터 생성 (write a synthetic Korean visual-reasoning set)",
        description="CLEVR 같은 도형 그림과 한국어 질문/답을 만듭니다 (scenes + Korean QA, seeded).",
    )
    _add_set_arguments(data)
    data.set_defaults(func=make_set)


def _add_set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    parser.add_argument("--count", required=True, type=int, help="number of scenes (train + test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=64, help="pixels per side (default 64)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="held-out scenes (default 0.2)")
    parser.add_argument("--grid", type=int, default=4,
                        help="objects in cells of a GRIDxGRID layout (default 4; 0: anywhere)")


def _add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-questions", default="", metavar="TYPE=N,...",
                        help="questions of these types per training scene, e.g. relation=8 (default 1 each)")
    parser.add_argument("--reasoned-relations", action="store_true",
                        help="yes/no relation answers name the further object first "
                             "(\"초록색 네모가 더 왼쪽에 있으므로 아니요\"); scored by the verdict")
    parser.add_argument("--varied-wordings", action="store_true",
                        help="reword about 40%% of the training questions (a word in front, another noun in "
                             "\"which one\") so that the names move; the test split is unchanged")
    parser.add_argument("--varied-nouns", action="store_true",
                        help="another noun for \"도형\" (것, 물체) in half of the shape and count training "
                             "questions; the test split is unchanged")


def make_set(args: argparse.Namespace) -> int:
    from research.vr.synthetic import generate

    try:
        summary = generate(args.output, args.count, args.seed, image_size=args.image_size,
                           test_fraction=args.test_fraction, grid=args.grid,
                           train_questions=parse_type_counts(getattr(args, "train_questions", "")),
                           reasoned=getattr(args, "reasoned_relations", False),
                           varied=getattr(args, "varied_wordings", False),
                           varied_nouns=getattr(args, "varied_nouns", False))
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m research.vr.cli",
                                     description="The synthetic set with the proof's experiment switches.")
    _add_set_arguments(parser)
    _add_experiment_arguments(parser)
    return make_set(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
