#!/usr/bin/env bash
# The memory estimate against real CUDA steps, for a session that is lent a GPU.
#
#   bash scripts/gpu_wheels.sh                                  # here: wheels into .whl/
#   run(command="bash scripts/gpu_estimate_check.sh", carry=[".whl"], timeout_s=420)
#
# Runs tests/trainer/test_estimate_gpu.py (SD1.5 512 px and SDXL 1024 px with gradient
# checkpointing: the estimate within 10 % of torch.cuda.max_memory_allocated()) and the
# reference-point estimates of scripts/bench_estimate.py; JSON and logs land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_estimate_check}
mkdir -p "$OUT"
export OUT
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
START=$SECONDS
if [ -d .whl ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "wheel install failed" | tee "$OUT/env.txt"; exit 1; }
  export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/env.txt"
timeout 300 "$PY" -m pytest tests/trainer/test_estimate_gpu.py -m gpu -q -rs -p no:cacheprovider \
  > "$OUT/estimate_gpu_tests.log" 2>&1
echo "estimate gpu tests: exit $? ($((SECONDS - START)) s)"; tail -8 "$OUT/estimate_gpu_tests.log"
cat "$OUT"/estimate_gpu_*.json 2>/dev/null
echo "done in $((SECONDS - START)) s"
