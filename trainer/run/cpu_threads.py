"""How idle CPU threads wait, decided from what this run is about to do.

PyTorch's CPU kernels run on OpenMP threads (libgomp). After each parallel region an idle
thread spins for a while before it sleeps (the runtime's default). That is the fastest
choice as long as every thread has a core of its own; when the run asks for more threads
than it has cores (`num_processes` x `num_cpu_threads_per_process` > usable cores), the
spinning threads take the cores the working ones need and every region waits for a thread
that is not running, so then they sleep at once (OMP_WAIT_POLICY=PASSIVE). Measured on
2 cores (BENCHMARKS.md): with cores to spare the default is as fast as ACTIVE and faster
than PASSIVE (full-size SD1.5 step); oversubscribed, sleeping is 1.5-60x faster (tiny model).

The decision depends only on the settings and the machine's core count, never on what
else happens to run (an earlier version looked at the load average, so a user's previous
run made the next one 25 % slower). `num_cpu_threads_per_process` means what it means in
Kohya: threads per process (torch.set_num_threads; `accelerate launch
--num_cpu_threads_per_process` passes it on as OMP_NUM_THREADS).

libgomp reads the policy once, when torch loads: `trainer/__init__.py` decides from the
environment (OMP_NUM_THREADS, a launcher's LOCAL_WORLD_SIZE) before anything imports
torch, and `python -m trainer` decides again from the preset as soon as it has read it
(torch is not loaded yet then). A value the user put in the environment is always kept.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

# Beside the value it sets, the value itself: so a later decision (the preset's, or a child
# process's) can tell ours from the user's.
MARK = "TRAINER_SET_OMP_WAIT_POLICY"


def wait_policy_for(threads: int | None, processes: int, cores: int) -> str | None:
    """ "PASSIVE" when the run's threads outnumber the usable cores, else None (the runtime's
    default). `threads` None: torch's default, one per usable core."""
    if threads is None:
        return None
    return "PASSIVE" if max(1, threads) * max(1, processes) > max(1, cores) else None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def apply_cpu_thread_defaults(
    environ: MutableMapping[str, str] = os.environ,
    threads: int | None = None,
    processes: int | None = None,
    cores: int | None = None,
) -> str | None:
    """Set OMP_WAIT_POLICY for this run unless the user set it or torch is already loaded
    (then it is too late to matter); returns the value set (None: the runtime's default).

    `threads` / `processes` default to what a launcher put in the environment
    (OMP_NUM_THREADS, LOCAL_WORLD_SIZE), else torch's default threads and one process.
    """
    if "OMP_WAIT_POLICY" in environ and environ["OMP_WAIT_POLICY"] != environ.get(MARK):
        return None  # the user's
    if "torch" in sys.modules and environ is os.environ:
        return None
    threads = threads or _int(environ.get("OMP_NUM_THREADS"))
    processes = processes or _int(environ.get("LOCAL_WORLD_SIZE")) or 1
    policy = wait_policy_for(threads, processes, cores or usable_cores())
    if policy:
        environ["OMP_WAIT_POLICY"] = environ[MARK] = policy
    else:
        environ.pop("OMP_WAIT_POLICY", None)
        environ.pop(MARK, None)
    return policy
