"""How idle CPU threads wait: sleep when the CPU is already busy, spin otherwise.

PyTorch's CPU kernels run on OpenMP threads (libgomp), which by default spin for a few
milliseconds after each parallel region, waiting for the next one. On an idle CPU that is
the fastest choice. On a CPU that other processes already keep busy (a shared CI runner, a
laptop compiling something), the spinning threads take the cores the working threads need,
and every parallel region waits for a thread that is not running: a tiny-model step took
7-21 s with 2 threads instead of 0.1 s (BENCHMARKS.md). Sleeping threads
(OMP_WAIT_POLICY=PASSIVE) cut that to 0.6-0.9 s, but cost about 40 % on an idle CPU. So
the policy follows the CPU's load when the trainer starts; libgomp reads it once, when
torch is imported, so `trainer/__init__.py` applies it before anything imports torch. A
value already in the environment is always kept.
"""
from __future__ import annotations

import os
from collections.abc import MutableMapping


def wait_policy_for(load: float, cores: int) -> str | None:
    """"PASSIVE" when the 1-minute load average already fills every core, else None (stock)."""
    return "PASSIVE" if load >= max(1, cores) else None


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
