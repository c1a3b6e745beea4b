#!/usr/bin/env bash
# First-run setup: a virtual environment in .venv with everything the app needs.
# Usage: bash scripts/setup.sh [--dev]     (--dev adds the test tools)
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    if command -v nvidia-smi >/dev/null 2>&1; then
        # An NVIDIA GPU: PyPI's Linux torch wheel is the CUDA build.
        "$VPY" -m pip install "torch>=2.4"
    else
        # No NVIDIA GPU: the small CPU build.
        "$VPY" -m pip install "torch==2.13.0"
    fi
fi
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VPY" -m pip install -e ".${extras}"
    # The CLIP tokenizer vocabulary used by the offline tiny models ships in this wheel;
    # --no-deps keeps its torchvision dependency (and a second torch) out.
    "$VPY" -m pip install --no-deps "open-clip-torch>=2.24"
    if command -v nvidia-smi >/dev/null 2>&1; then
        "$VPY" -m pip install ".[cuda]" || echo "bitsandbytes could not be installed: the 8-bit optimizers will be unavailable"
    fi
    touch "$stamp"
fi
