#!/usr/bin/env bash
# Set up what is missing for `make run` (mode run) or `make test` (mode test); fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
case "$mode" in
  run) extras=train ;;
  test) extras=dev ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

python_bin=$(command -v python3.11 || command -v python3)
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $python_bin"
  "$python_bin" -m venv .venv
fi

stamp=.venv/.kovr-$mode
want=$( (cat pyproject.toml package.json package-lock.json 2>/dev/null || true) | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "==> installing Python packages (.[$extras])"
  .venv/bin/python -m pip install -q --upgrade pip
  if ! command -v nvidia-smi >/dev/null 2>&1 && ! .venv/bin/python -c "import torch" 2>/dev/null; then
    # CPU machine: take the CPU build; an unpinned torch would pull a multi-GB CUDA build.
    .venv/bin/python -m pip install -q "torch==2.13.0"
  fi
  .venv/bin/python -m pip install -q -e ".[$extras]"
  if [ -f package.json ]; then
    echo "==> installing front-end packages (npm ci)"
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  fi
  echo "$want" > "$stamp"
fi

if [ "$mode" = test ] && [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's Chromium for the browser tests"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
