#!/usr/bin/env bash
# Set up a virtual environment with everything stella-rag needs, then run the demo or the tests.
#
#   bash scripts/dev.sh demo    # offline demo: index examples/ into embedded Chroma, chat with it
#   bash scripts/dev.sh test    # the whole test suite (core, Chroma, CLI, LangChain, LlamaIndex)
#   bash scripts/dev.sh bench   # benchmarks/run.py with its peers installed (args go to run.py)
#
# The venv is .venv in the repository (override with STELLA_VENV). torch: where no NVIDIA GPU
# is visible the CPU build is installed (torch==2.13.0); with a GPU, the default CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

task="${1:-}"
shift || true
case "$task" in demo|test|bench) ;; *) echo "usage: bash scripts/dev.sh demo|test|bench [args...]" >&2; exit 2 ;; esac

venv="${STELLA_VENV:-.venv}"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1 ANONYMIZED_TELEMETRY=False TOKENIZERS_PARALLELISM=false

if ! python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    python -m pip install -q "torch>=2.1,<3"
  else
    python -m pip install -q "torch==2.13.0"
  fi
fi

packages=(-e ".[offline]")
if [ "$task" = test ]; then
  packages=(-e ".[offline,test,fast,train,ray]")
  for pkg in integrations/*/; do
    if [ -f "$pkg/pyproject.toml" ]; then packages+=(-e "${pkg}[test]"); fi
  done
elif [ "$task" = bench ]; then
  packages=(-e ".[offline,fast]" -r benchmarks/requirements.txt)
  for pkg in integrations/*/; do
    if [ -f "$pkg/pyproject.toml" ]; then packages+=(-e "$pkg"); fi
  done
fi
python -m pip install -q "${packages[@]}"

if [ "$task" = demo ]; then
  exec python examples/demo.py "$@"
fi
if [ "$task" = bench ]; then
  exec python benchmarks/run.py "$@"
fi
exec python -m pytest -q "$@"
