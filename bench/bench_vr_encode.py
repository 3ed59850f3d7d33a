"""Bench: tokenising a visual-reasoning training set, batched (what `kovr finetune-vr` does) vs one
record at a time through the same functions (what it did before), on the same records in the same
process.

    python bench/bench_vr_encode.py                       # 16,000 synthetic scenes
    python bench/bench_vr_encode.py --scenes 60000

The set is `kovr vr-data`'s training split; the tokenizer is the demo's, trained on the set's
text. Both ways must give the same token ids (checked).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from finetune.modeling import train_tokenizer
from finetune.vr.data import encode, encode_many, load_vqa
from kovr.prompt import KULLM
from research.vr.synthetic import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.scenes < 10:
        parser.error("--scenes must be at least 10")
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, args.scenes, args.seed, image_size=32)
        records = load_vqa(Path(tmp) / "train_vqa.jsonl")
        tokenizer = train_tokenizer([KULLM.render(r.instruction) + r.output for r in records[:20000]], 4000)
        print(f"{len(records):,} records ({args.scenes:,} scenes); {platform.machine()}, "
              f"{platform.python_version()}")
        start = time.perf_counter()
        single = [encode(r, tokenizer, KULLM, True, 256, 16) for r in records]
        one_by_one = time.perf_counter() - start
        start = time.perf_counter()
        batched = encode_many(records, tokenizer, KULLM, True, 256, 16)
        in_batches = time.perf_counter() - start
    if batched != single:
        raise SystemExit("batched and one-at-a-time encodings differ")
    print("| way | seconds | records/s | speed-up |")
    print("|---|---:|---:|---:|")
    for name, seconds in (("one record at a time (baseline)", one_by_one), ("batched (finetune-vr)", in_batches)):
        print(f"| {name} | {seconds:.2f} | {len(records) / seconds:,.0f} | {one_by_one / seconds:.2f}x |")


if __name__ == "__main__":
    main()
