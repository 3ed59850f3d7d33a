"""`kovr eval-chat`: answers of several models on one Korean prompt set, judged side by side.

The only place this package touches the environment: the API-key variables named in the specs
(``key_env=VAR``, ``--judge-key-env VAR``) are read here, once, and passed down as values.
Heavy imports (torch, uvicorn, matplotlib) stay inside the handler so `kovr --help` is fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from evalchat.judge import JudgeSpec
from evalchat.prompts import Item, PromptSetError, load_prompt_set
from evalchat.targets import GenParams, TargetError, TargetSpec, parse_target, resolve_keys

EXAMPLE = """예 example:
  kovr eval-chat --target base=local:runs/base_model --target tuned=http://127.0.0.1:8080 \\
      --target app='http://127.0.0.1:8000/v1;key_env=KOVR_API_TOKEN' \\
      --judge https://api.openai.com/v1 --judge-model gpt-4o --judge-key-env OPENAI_API_KEY --output runs/eval
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-chat",
        help="한국어 답변 비교 평가 (judge Korean chat answers of several models, KULLM style)",
        description="Generate answers of each --target on a Korean prompt set (cached per target, item and "
        "parameters), measure them without a judge, optionally judge them with any OpenAI-compatible "
        "model on KULLM's six criteria and pairwise, and write DIR/report.md, report.json, report.png.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--target", action="append", required=True, metavar="NAME=SPEC",
                   help="[openai:|tgi:|local:]URL-or-folder[;model=NAME][;key_env=VAR]; repeat to compare")
    p.add_argument("--output", type=Path, required=True, help="folder for answers, judge records and the report")
    p.add_argument("--prompts", type=Path, help="JSONL in KULLM's fields (default: KoVR's own Korean set)")
    p.add_argument("--limit", type=int, help="use only the first N items")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--judge", metavar="URL", help="OpenAI-compatible base URL of the judge (…/v1)")
    p.add_argument("--judge-model", help="the judge's model name (default: the first of its /models)")
    p.add_argument("--judge-key-env", metavar="VAR", help="environment variable holding the judge's API key")
    p.add_argument("--judge-max-tokens", type=int, default=256)
    p.add_argument("--no-absolute", action="store_true", help="skip the six-criteria scores")
    p.add_argument("--no-pairwise", action="store_true", help="skip the A/B comparisons")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="for local folders (KOVR_DEVICE)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval_chat)


def _inputs(args: argparse.Namespace) -> tuple[list[TargetSpec], dict[str, str], str | None, list[Item]]:
    """Specs, their API keys, the judge's key and the items; raises TargetError / PromptSetError."""
    environ = dict(os.environ)  # read once, here; everything below gets values
    specs = [parse_target(t) for t in args.target]
    if len({s.name for s in specs}) != len(specs):
        raise TargetError("--target names must differ")
    keys = resolve_keys(specs, environ)
    judge_key = None
    if args.judge_key_env:
        judge_key = environ.get(args.judge_key_env)
        if not judge_key:
            raise TargetError(f"--judge-key-env: environment variable {args.judge_key_env} is not set")
    items = load_prompt_set(args.prompts)
    return specs, keys, judge_key, items[: args.limit] if args.limit else items


def cmd_eval_chat(args: argparse.Namespace) -> int:
    from evalchat.run import EvalRun, run_eval
    from kovr.settings import load_settings

    try:
        specs, keys, judge_key, items = _inputs(args)
    except (TargetError, PromptSetError) as exc:
        print(f"kovr eval-chat: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(**({"device": args.device} if args.device else {}))
    run = EvalRun(
        out_dir=args.output, items=items, targets=specs,
        params=GenParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature),
        judge=JudgeSpec(args.judge, args.judge_model, args.judge_key_env) if args.judge else None,
        judge_max_tokens=args.judge_max_tokens, absolute=not args.no_absolute, pairwise=not args.no_pairwise,
        progress=not args.no_progress, seed=args.seed,
        prompt_set=str(args.prompts) if args.prompts else "builtin ko_chat_eval",
    )
    try:
        result = run_eval(run, settings, keys, judge_key)
    except TargetError as exc:
        print(f"kovr eval-chat: {exc}", file=sys.stderr)
        return 1
    for name, stats in result.generation.items():
        print(f"{name}: 새 답변 generated {stats.generated}, 캐시 cached {stats.cached}, 실패 failed {stats.failed}")
    if run.judge is not None:
        print(f"심사 judge: 질문 asked {result.judge_asked}, 캐시 cached {result.judge_cached}")
    print(f"보고서 report: {args.output / 'report.md'}")
    return 0
