"""The training engine: config, data, models, LoRA network, loop, saving, CLI.

Importing the package sets one process-wide default before torch loads: CPU threads that
wait for work sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE; libgomp reads it once,
when torch is imported). By default an idle OpenMP thread spins for milliseconds, and on a
CPU shared with other work (a laptop, a busy CI runner) those spinning threads take the
cores the working ones need: a tiny-model step measured 10-20x slower with 2 threads than
with 1 (BENCHMARKS.md). Passive waiting costs a few microseconds per parallel region on an
idle machine. A value already set in the environment is kept.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
