#!/usr/bin/env bash
# First-run setup: a virtual environment in .venv with everything the app needs.
# Usage: bash scripts/setup.sh [--dev]     (--dev adds the test tools)
# Safe to run again: it only installs what is missing.
#
# torch: with an NVIDIA GPU (nvidia-smi found), PyPI's Linux wheel, which is the CUDA
# build, and the `cuda` extra (bitsandbytes: the 8-bit optimizers). Without one, the CPU
# build: PyPI's Linux torch wheel is the CUDA build (gigabytes), so the CPU wheel comes
# from a local wheel folder or PyTorch's CPU index. A torch already in .venv is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
gpu=0
command -v nvidia-smi >/dev/null 2>&1 && gpu=1
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    if [ "$gpu" = 1 ] || [ "$(uname -s)" = "Darwin" ]; then
        "$VPY" -m pip install "torch==$TORCH_VERSION"
    else
        # The CPU build: a local wheel where pip finds one (find-links), else PyTorch's index.
        "$VPY" -m pip install "torch==$TORCH_VERSION+cpu" 2>/dev/null \
            || "$VPY" -m pip install "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu
    fi
fi
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VPY" -m pip install -e ".${extras}"
    # The CLIP tokenizer vocabulary used by the offline tiny models ships in this wheel;
    # --no-deps keeps its torchvision dependency (and a second torch) out.
    "$VPY" -m pip install --no-deps "open-clip-torch>=2.24"
    if [ "$gpu" = 1 ]; then
        # The extra's own requirement, so the editable install above stays as it is.
        if ! "$VPY" -m pip install "bitsandbytes>=0.44"; then
            echo "bitsandbytes could not be installed: the 8-bit optimizers (the default AdamW8bit)" \
                 "are unavailable; choose AdamW under Parameters > Optimizer, or run this again." >&2
            exit 1
        fi
    fi
    touch "$stamp"
fi
# The browser tests drive a system Chromium; without one they are skipped, saying so.
chromium=${LORA_STUDIO_CHROMIUM:-/usr/bin/chromium}
if [ -n "$extras" ] && [ ! -x "$chromium" ]; then
    echo "chromium not found at $chromium: the browser tests (pytest marker 'browser') will be" \
         "skipped. To run them: sudo apt-get install chromium (Debian/Ubuntu), or set" \
         "LORA_STUDIO_CHROMIUM to a Chromium or Chrome binary."
fi
