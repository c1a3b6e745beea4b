#!/usr/bin/env bash
# Fetch, here (a machine with PyPI), the wheels that a lent GPU machine lacks, into .whl/.
#
# The GPU image ('cuda': Python 3.12, PyTorch, transformers, accelerate, safetensors,
# tokenizers, pillow, numpy, psutil, pytest) has no diffusers, pydantic, open_clip (whose
# wheel carries the CLIP BPE merges our tokenizer is built from) or bitsandbytes; peft is
# pinned to ours. .whl/ is git-ignored and travels with `run(..., carry=[".whl"])`; the
# whole tree must stay under 64 MiB (these are about 55 MB). Then: scripts/gpu_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  diffusers==0.42.1 peft==0.21.2 pydantic==2.14.4 pydantic_core==2.50.5 annotated_types==0.8.0 \
  typing_inspection==0.4.5 typing_extensions==4.16.0 importlib_metadata==10.2.0 open_clip_torch==3.3.0 bitsandbytes==0.50.2
du -sh .whl
