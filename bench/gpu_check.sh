#!/usr/bin/env bash
# The model server's GPU check in one call (issue 43), under 10 minutes on an H100/H200:
#   1. the CUDA-graph exactness tests (tests/model_server/test_slots.py, gpu-marked ones included),
#   2. bench/bench_model_server.py --device cuda --shape polyglot-ko-1.3b at 1/16/64 streams, the
#      static cache + CUDA graphs ("after") against the dynamic eager engine ("before") in the same
#      run, plus 16 streams with every other prompt carrying an image.
# Everything it reports lands in $OUT (the device tool's output folder; /tmp/kovr-gpu elsewhere):
# gpu.log (all output), bench.json (figures), tests.log. Record the table in docs/BENCHMARKS.md.
#
#     bash bench/gpu_wheels.sh                                   # here, with PyPI: .gpu-wheels/
#     run(command="bash bench/gpu_check.sh", carry=[".gpu-wheels"], timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/kovr-gpu}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu.log") 2>&1
PY=${PYTHON:-python3}
started=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
if [ -d .gpu-wheels ]; then  # the machine's torch (CUDA build) stays; the project's pins come from the wheels
    "$PY" -m venv --system-site-packages /tmp/kovr-gpu-venv \
        && /tmp/kovr-gpu-venv/bin/pip install -q --no-index --find-links .gpu-wheels -r bench/gpu_requirements.txt \
        && PY=/tmp/kovr-gpu-venv/bin/python
fi
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
export PYTHONPATH=$PWD OMP_NUM_THREADS=8 TOKENIZERS_PARALLELISM=false

echo "== exactness tests ($((SECONDS - started)) s)"
timeout 180 "$PY" -m pytest tests/model_server/test_slots.py tests/model_server/test_batch.py -q -rs -p no:cacheprovider \
    -W ignore::DeprecationWarning 2>&1 | tee "$OUT/tests.log" | tail -6

echo "== bench ($((SECONDS - started)) s)"
timeout 420 "$PY" bench/bench_model_server.py --device cuda --shape polyglot-ko-1.3b --streams 1,16,64 --repeat 1 \
    --image-streams 16 --no-write --json "$OUT/bench.json" 2>&1 | grep -v ' - "POST / HTTP' | tail -60
echo "== done in $((SECONDS - started)) s"
