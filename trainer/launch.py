"""Several processes: the `accelerate launch` argument list for a config, never a shell string.

The GUI's Start and `python -m trainer` both use it when `num_processes` > 1, so a user
never types the launcher command. Imports neither torch nor accelerate (the GUI imports it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from trainer.config import TrainingConfig
from trainer.config.checks import gpu_id_list

# Set by `accelerate launch` / torchrun in each process it starts.
_LAUNCHER_ENV = ("LOCAL_RANK", "WORLD_SIZE", "ACCELERATE_DYNAMO_BACKEND")


def under_launcher(environ: dict[str, str] | None = None) -> bool:
    """True inside a process that accelerate launch (or torchrun) started."""
    env = os.environ if environ is None else environ
    return any(key in env for key in _LAUNCHER_ENV)


def accelerate_command(
    config_path: str | Path, cfg: TrainingConfig, python: str = sys.executable, events: bool = True
) -> list[str]:
    """`python -m accelerate.commands.launch ... -m trainer --config PATH` for `cfg`.

    --multi_gpu is explicit, so that a user's default accelerate config cannot turn the run
    into one process (without CUDA the processes train on the CPU over gloo).
    """
    cmd = [
        python,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(cfg.num_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        cfg.mixed_precision,
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",  # as Kohya's GUI passes it: OMP_NUM_THREADS per process
        str(cfg.num_cpu_threads_per_process),
    ]
    gpu_ids = gpu_id_list(cfg.gpu_ids)
    if gpu_ids:
        cmd += ["--gpu_ids", ",".join(gpu_ids)]
    if cfg.main_process_port:
        cmd += ["--main_process_port", str(cfg.main_process_port)]
    cmd += ["-m", "trainer", "--config", str(config_path)]
    if events:
        cmd += ["--events", "jsonl"]
    return cmd
