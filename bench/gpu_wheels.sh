#!/usr/bin/env bash
# Download, on a machine with PyPI, the wheels bench/gpu_check.sh installs on a lent GPU machine, which
# has no network: bench/gpu_requirements.txt and their dependencies, for the GPU machine's
# Python (3.12 on the loans so far; PY_VERSION=3.11 etc. to change), torch excluded (the machine has
# its CUDA build). About 54 MB, under the device tool's 64 MiB carry limit.
#
#     bash bench/gpu_wheels.sh            # -> .gpu-wheels/ (git-ignored), then carry it: carry=[".gpu-wheels"]
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${PY_VERSION:-3.12}
ABI=cp${PY_VERSION/./}
PIP=${PIP:-.venv/bin/pip}
[ -x "$PIP" ] || PIP="python3 -m pip"
rm -rf .gpu-wheels
$PIP download -q --only-binary=:all: --python-version "$PY_VERSION" --implementation cp --abi "$ABI" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .gpu-wheels -r bench/gpu_requirements.txt
du -sh .gpu-wheels
