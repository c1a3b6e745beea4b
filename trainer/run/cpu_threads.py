"""How idle CPU threads wait: sleep when other work already uses the CPU, spin otherwise.

PyTorch's CPU kernels run on OpenMP threads (libgomp), which by default spin for a few
milliseconds after each parallel region, waiting for the next one. On an idle CPU that is
the fastest choice. When other processes also want the CPU (a shared CI runner, a laptop
busy with something else), the spinning threads take the cores the working threads need,
and every parallel region waits for a thread that is not running. Measured on 2 cores, a
tiny-model step with 2 threads, stock spinning vs sleeping (OMP_WAIT_POLICY=PASSIVE):
idle 0.10 s vs 0.15 s; one other busy process 0.27-0.60 s vs 0.19-0.23 s; two 0.30-0.85
vs 0.22-0.34; four 1.1-23 s vs 0.36-0.64 s (BENCHMARKS.md). So threads sleep as soon as
the 1-minute load average reaches half the cores. libgomp reads the policy once, when
torch is imported, so `trainer/__init__.py` applies it before anything imports torch. A
value already in the environment is always kept.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping


def wait_policy_for(load: float, cores: int) -> str | None:
    """ "PASSIVE" when the 1-minute load average reaches half the cores, else None (stock)."""
    return "PASSIVE" if load >= max(1, cores) / 2 else None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def apply_cpu_thread_defaults(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Set OMP_WAIT_POLICY for a busy CPU unless the user set it; returns what was set."""
    if "OMP_WAIT_POLICY" in environ:
        return None
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows has no load average
        return None
    policy = wait_policy_for(load, _usable_cores())
    if policy:
        environ["OMP_WAIT_POLICY"] = policy
    return policy
