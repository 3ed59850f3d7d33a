#!/usr/bin/env bash
# The unit suites on a second interpreter: Python 3.12 with transformers 5 (CI's `make test` keeps
# the default interpreter and the resolver's transformers, 4.x while text-generation pins
# huggingface-hub<1). Usage: scripts/test-py312.sh [pytest args]; VENV=path picks the virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv312}
python_bin=$(command -v python3.12) || { echo "python3.12 not found (pyenv install 3.12 or apt install python3.12)" >&2; exit 2; }
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv with $python_bin"
  "$python_bin" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
stamp=$venv/.kovr-py312
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "==> installing .[dev] with transformers 5"
  "$venv/bin/python" -m pip install -q "torch==2.13.0"
  "$venv/bin/python" -m pip install -q -e ".[dev]"
  # transformers 5 needs huggingface-hub 2, which text-generation's metadata (hub<1) refuses; its
  # client works with it (tests/model_server talk to the server through it).
  "$venv/bin/python" -m pip install -q "transformers>=5" "huggingface-hub>=2.4"
  echo "$want" > "$stamp"
fi
"$venv/bin/python" -c "import sys, transformers; print('python', sys.version.split()[0], 'transformers', transformers.__version__)"
exec "$venv/bin/python" -m pytest -m "not slow and not browser and not gpu" \
  tests/model_server tests/finetune tests/vr tests/test_imports.py tests/test_prompt.py "$@"
