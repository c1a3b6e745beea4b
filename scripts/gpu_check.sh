#!/usr/bin/env bash
# The checks that need a GPU, for a session that is lent one (never run in CI).
#
#   bash scripts/gpu_wheels.sh                                  # here: wheels into .whl/
#   run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
#   # with sd-scripts copied into .refs/sd-scripts (scripts/gpu_wheels.sh says how):
#   run(command="PARTS=sdscripts bash scripts/gpu_check.sh", carry=[".whl", ".refs"], timeout_s=540)
#
# On the GPU machine: installs the carried wheels (diffusers, pydantic, ... which its image
# lacks) into /tmp/site, then
#  1. scripts/gpu_cases.py: each training case in its own process under its own time limit
#     (fp16, bf16, full_fp16, fp8_base with and without gradient checkpointing,
#     mem_eff_attn, text-encoder checkpointing, SDXL fp16, cache_latents off, sampling,
#     resume, two processes over NCCL when there are 2 GPUs, the out-of-memory message),
#     asserting the optimizer (the fp16 grad scaler's) stepped; peak memory and s/step per
#     case in cases.json;
#  2. the gpu-marked tests (no host waits, AdamW8bit and the bitsandbytes optimizers,
#     xformers when present, channels-last + compile);
#  3. while time is left, scripts/bench.py: SD1.5 at 512 px (batch 1 and 8), SDXL at
#     1024 px (batch 1, gradient checkpointing), SD1.5 with channels-last and torch.compile;
#  4. while time is left, and only when .refs/sd-scripts holds an sd-scripts checkout:
#     `scripts/bench.py --reference sd-scripts --device cuda` (ours beside sd-scripts'
#     train_network.py / sdxl_train_network.py, both on this image's Python, bf16, SDPA,
#     latents cached) for SD1.5 512 px batch 1 and batch 8, and SDXL 1024 px batch 1 with
#     gradient checkpointing, into bench_sdscripts.json; without it, a line says it was not run.
# PARTS (default "cases tests bench sdscripts") picks the parts: the four together never
# leave time for step 4, so run it alone with PARTS=sdscripts.
# Logs and JSON land in $OUT (at most 8 files come back: env.txt, cases.json, cases.log,
# gpu_tests.log, bench.log, bench.json, bench_sdscripts.json). It aims to finish in 8
# minutes, so a rerun fits in a 15-minute lease: each part has its own time limit.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
START=$SECONDS
PARTS=${PARTS:-cases tests bench sdscripts}
part() { [[ " $PARTS " == *" $1 "* ]]; }

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

BUDGET=470  # seconds: the whole check stays under 8 minutes

# 1. The training cases, one process each (the driver skips one that would overrun).
if part cases; then
  timeout 300 "$PY" scripts/gpu_cases.py --out "$OUT" --budget 280
  echo "gpu cases: exit $? ($((SECONDS - START)) s)"
fi

# 2. The gpu-marked tests (conftest skips them without CUDA; here they must run).
if part tests; then
  timeout 100 "$PY" -m pytest tests/trainer/test_gpu.py -m gpu -q -rs -p no:cacheprovider \
    > "$OUT/gpu_tests.log" 2>&1
  echo "gpu tests: exit $? ($((SECONDS - START)) s)"; tail -5 "$OUT/gpu_tests.log"
fi

# 3. Benchmarks while time is left; their JSON merged into one file (8 files come back).
BENCH=/tmp/gpu_bench
mkdir -p "$BENCH"
bench() {  # name, time limit (s), bench arguments...; skipped when it would overrun BUDGET
  local name=$1 limit=$2; shift 2
  part bench || return 0
  if [ $((SECONDS - START + limit)) -gt $BUDGET ]; then
    echo "bench $name: skipped, too little time left"; return
  fi
  timeout "$limit" "$PY" scripts/bench.py --device cuda --steps 10 --warmup 3 \
    --json "$BENCH/bench_$name.json" "$@" >> "$OUT/bench.log" 2>&1
  echo "bench $name: exit $? ($((SECONDS - START)) s)"
}
bench sd15_b1 50 --arch sd15 --batch 1 --resolution 512
bench sdxl_b1 80 --arch sdxl --batch 1 --resolution 1024
bench sd15_b8 50 --arch sd15 --batch 8 --resolution 512
bench sd15_b1_channels_last 40 --arch sd15 --batch 1 --resolution 512 --set channels_last=true
bench sd15_b1_compile 90 --arch sd15 --batch 1 --resolution 512 --set torch_compile=true

# 4. sd-scripts beside ours, when a checkout was carried in .refs/sd-scripts (each setting
# under its own time limit; the SD1.5 checkpoint is written once, for both batches).
SD_SCRIPTS=.refs/sd-scripts
SD_BENCH=/tmp/gpu_bench_sdscripts
mkdir -p "$SD_BENCH"
sdscripts() {  # name, time limit (s), bench arguments...; skipped when it would overrun BUDGET
  local name=$1 limit=$2; shift 2
  if [ $((SECONDS - START + limit)) -gt $BUDGET ]; then
    echo "sd-scripts $name: skipped, too little time left"; return
  fi
  timeout "$limit" "$PY" scripts/bench.py --reference sd-scripts --device cuda \
    --sd-scripts "$SD_SCRIPTS" --sd-scripts-python "$PY" --runs 1 --steps 8 --warmup 2 --threads 8 \
    --json "$SD_BENCH/$name.json" "$@" >> "$OUT/bench.log" 2>&1
  echo "sd-scripts $name: exit $? ($((SECONDS - START)) s)"
}
if ! part sdscripts; then
  echo "sd-scripts comparison: not run (not in PARTS=\"$PARTS\")"
elif [ ! -f "$SD_SCRIPTS/train_network.py" ]; then
  echo "sd-scripts comparison: not run: no sd-scripts checkout in $SD_SCRIPTS (copy one there" \
    "as scripts/gpu_wheels.sh says and carry \".refs\")"
else
  sdscripts sd15_512_b1 120 --arch sd15 --resolution 512 --batch 1 \
    --model-file "$SD_BENCH/sd15-random-fp16.safetensors"
  sdscripts sd15_512_b8 100 --arch sd15 --resolution 512 --batch 8 \
    --model-file "$SD_BENCH/sd15-random-fp16.safetensors"
  sdscripts sdxl_1024_b1_gc 200 --arch sdxl --resolution 1024 --batch 1 --gradient-checkpointing
fi

# The JSON of steps 3 and 4, each merged into one file (8 files come back).
"$PY" - "$BENCH" "$OUT/bench.json" "$SD_BENCH" "$OUT/bench_sdscripts.json" <<'PY'
import json, pathlib, sys
for folder, out in zip(sys.argv[1::2], sys.argv[2::2]):
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(pathlib.Path(folder).glob("*.json"))}
    if runs:
        pathlib.Path(out).write_text(json.dumps(runs, indent=1))
PY
tail -40 "$OUT/bench.log" 2>/dev/null
echo "done in $((SECONDS - START)) s"
