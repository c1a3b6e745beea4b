#!/usr/bin/env bash
# Fetch, here (a machine with PyPI), the wheels that a lent GPU machine lacks, into .whl/.
#
# The GPU image ('cuda': Python 3.12, PyTorch, torchvision, transformers, accelerate,
# safetensors, tokenizers, pillow, numpy, psutil, einops, opencv-python-headless, rich,
# pytest) has no diffusers, pydantic, open_clip (whose wheel carries the CLIP BPE merges our
# tokenizer is built from) or bitsandbytes; peft is pinned to ours. sd-scripts' training
# path also imports toml, voluptuous and imagesize (small, pure Python; the rest of its
# requirements.txt is optional there). .whl/ is git-ignored and travels with
# `run(..., carry=[".whl"])`; the whole tree must stay under 64 MiB (these are about 55 MB).
# Then: scripts/gpu_check.sh.
#
# The sd-scripts comparison (gpu_check.sh step 4) also needs sd-scripts itself, in the
# git-ignored .refs/sd-scripts, carried with `carry=[".whl", ".refs"]`: a copy of a
# checkout without what SD1.5/SDXL LoRA training never reads (its configs/ alone is 6 MB):
#   SD_SCRIPTS=/path/to/sd-scripts bash scripts/gpu_wheels.sh     # wheels, then the copy
# or by hand:
#   mkdir -p .refs/sd-scripts && tar -C /path/to/sd-scripts --exclude=.git --exclude=venv \
#     --exclude=configs --exclude=docs --exclude=images --exclude=tests \
#     --exclude=bitsandbytes_windows --exclude='*.egg-info' --exclude=__pycache__ -cf - . \
#     | tar -C .refs/sd-scripts -xf -
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  diffusers==0.42.1 peft==0.21.2 pydantic==2.14.4 pydantic_core==2.50.5 annotated_types==0.8.0 \
  typing_inspection==0.4.5 typing_extensions==4.16.0 importlib_metadata==10.2.0 open_clip_torch==3.3.0 bitsandbytes==0.50.2 \
  toml==0.10.2 voluptuous==0.15.2 imagesize==1.4.1
if [ -n "${SD_SCRIPTS:-}" ]; then
  rm -rf .refs/sd-scripts && mkdir -p .refs/sd-scripts
  tar -C "$SD_SCRIPTS" --exclude=.git --exclude=venv --exclude=configs --exclude=docs --exclude=images \
    --exclude=tests --exclude=bitsandbytes_windows --exclude='*.egg-info' --exclude=__pycache__ -cf - . \
    | tar -C .refs/sd-scripts -xf -
fi
du -shc .whl $([ -d .refs ] && echo .refs)  # what carry=[".whl", ".refs"] adds: under 64 MiB with the tree
