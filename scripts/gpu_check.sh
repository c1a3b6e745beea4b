#!/usr/bin/env bash
# The checks that need a GPU, for a session that is lent one (never run in CI).
#
#   bash scripts/gpu_wheels.sh                                  # here: wheels into .whl/
#   run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# On the GPU machine: installs the carried wheels (diffusers, pydantic, ... which its image
# lacks) into /tmp/site, runs the gpu-marked tests (fp16/bf16 steps, no host waits,
# AdamW8bit, xformers when present, channels-last + compile), then scripts/bench.py for
# SD1.5 at 512 px (batch 1 and 8) and SDXL at 1024 px (batch 1, gradient checkpointing),
# and, while time is left, SD1.5 batch 1 with channels-last and with torch.compile. Logs
# and JSON land in $OUT (at most 8 files come back). It aims to finish in 8 minutes, so a
# rerun fits in a 15-minute lease: each part has its own time limit.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
START=$SECONDS

if [ -d .whl ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "wheel install failed" | tee "$OUT/env.txt"; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" - <<'PY'
import importlib
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
for name in ("diffusers", "transformers", "accelerate", "peft", "pydantic", "bitsandbytes", "xformers"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:  # noqa: BLE001 - a report line, not a failure
        print(name, "missing:", type(exc).__name__, str(exc)[:120])
PY
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# The gpu-marked tests (conftest skips them without CUDA; here they must run).
timeout 180 "$PY" -m pytest tests/trainer/test_gpu.py -m gpu -q -rs -p no:cacheprovider \
  > "$OUT/gpu_tests.log" 2>&1
echo "gpu tests: exit $? ($((SECONDS - START)) s)"; tail -5 "$OUT/gpu_tests.log"

BUDGET=470  # seconds: the whole check stays under 8 minutes
bench() {  # name, time limit (s), bench arguments...; skipped when it would overrun BUDGET
  local name=$1 limit=$2; shift 2
  if [ $((SECONDS - START + limit)) -gt $BUDGET ]; then
    echo "bench $name: skipped, too little time left"; return
  fi
  timeout "$limit" "$PY" scripts/bench.py --device cuda --steps 10 --warmup 3 \
    --json "$OUT/bench_$name.json" "$@" >> "$OUT/bench.log" 2>&1
  echo "bench $name: exit $? ($((SECONDS - START)) s)"
}
bench sd15_b1 70 --arch sd15 --batch 1 --resolution 512
bench sd15_b8 70 --arch sd15 --batch 8 --resolution 512
bench sdxl_b1 120 --arch sdxl --batch 1 --resolution 1024
bench sd15_b1_channels_last 50 --arch sd15 --batch 1 --resolution 512 --set channels_last=true
bench sd15_b1_compile 110 --arch sd15 --batch 1 --resolution 512 --set torch_compile=true
tail -40 "$OUT/bench.log"
echo "done in $((SECONDS - START)) s"
