"""Run a training program as its users run it, writing a line at every optimizer step.

    python bench_shim.py STEPS.jsonl -m trainer --config PRESET.json
    python bench_shim.py STEPS.jsonl /path/to/sd-scripts/train_network.py ARGS...

scripts/bench_sdscripts.py starts ours and sd-scripts' train_network.py through this
shim, each with its own Python, so that both are timed the same way: a global optimizer
step hook (torch.optim.optimizer.register_optimizer_step_post_hook) appends
{"t": wall time, "hwm": peak RSS so far} to STEPS.jsonl after every step, and one
{"exit": ...} line at exit. At the first step the process's peak RSS is recorded and reset
(Linux /proc/self/clear_refs), so the later lines hold the peak of the steps alone. When
the program uses CUDA, each line also holds torch.cuda.max_memory_allocated ("vram_b",
bytes; reset at the first step like the RSS), and the hook synchronises the GPU first, so
that a step's time is the time its work took, not the time it took to queue it.

It imports nothing but the standard library before the program does: torch is loaded by
the program itself (our trainer decides its CPU-thread settings before that), and the hook
is registered as soon as torch.optim has been imported. Runs under any Python >= 3.8.
"""

import atexit
import builtins
import json
import os
import runpy
import sys
import time

_out = open(sys.argv[1], "a", buffering=1)  # noqa: SIM115 - open for the life of the process
_state = {"steps": 0, "registered": False}
_real_import = builtins.__import__


def _status_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _write(record):
    _out.write(json.dumps(record) + "\n")


def _profile(step):
    """BENCH_PROFILE=PATH: torch.profiler over the third step, its op table to PATH ({pid}: process id)."""
    path = os.environ.get("BENCH_PROFILE", "").replace("{pid}", str(os.getpid()))
    if not path or step not in (2, 3):
        return
    import torch

    if step == 2:
        _state["prof"] = torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True
        )
        _state["prof"].__enter__()
        return
    prof = _state.pop("prof")
    prof.__exit__(None, None, None)
    events = prof.key_averages()
    with open(path, "w") as f:
        f.write(f"ops: {sum(e.count for e in events)}\n")
        f.write(events.table(sort_by="self_cpu_time_total", row_limit=60, max_name_column_width=60))
        f.write(events.table(sort_by="count", row_limit=40, max_name_column_width=60))
        by_shape = prof.key_averages(group_by_input_shape=True)
        f.write(by_shape.table(sort_by="self_cpu_time_total", row_limit=80, max_name_column_width=50))


def _cuda():
    """torch.cuda when this process has started using it, else None."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        return cuda if cuda is not None and cuda.is_initialized() else None
    except Exception:  # noqa: BLE001 - never break the program being timed
        return None


def _after_step(optimizer, args, kwargs):
    _state["steps"] += 1
    _profile(_state["steps"])
    cuda = _cuda()
    if cuda is not None:
        cuda.synchronize()
    record = {"t": time.time(), "hwm_kib": _status_kib("VmHWM"), "rss_kib": _status_kib("VmRSS")}
    if cuda is not None:
        record["vram_b"] = cuda.max_memory_allocated()
    if _state["steps"] == 1:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM: from here on it is the steps' peak
            record["reset"] = True
        except OSError:
            record["reset"] = False
        if cuda is not None:
            cuda.reset_peak_memory_stats()
    _write(record)


def _import(name, *args, **kwargs):
    module = _real_import(name, *args, **kwargs)
    optim = sys.modules.get("torch.optim.optimizer")
    if not _state["registered"] and hasattr(optim, "register_optimizer_step_post_hook"):
        _state["registered"] = True
        builtins.__import__ = _real_import
        optim.register_optimizer_step_post_hook(_after_step)
    return module


def _at_exit():
    record = {"exit": time.time(), "hwm_kib": _status_kib("VmHWM"), "steps": _state["steps"]}
    cuda = _cuda()
    if cuda is not None:
        try:
            record["vram_b"] = cuda.max_memory_allocated()
        except Exception:  # noqa: BLE001 - torch may be half torn down at exit
            pass
    _write(record)
    _out.close()


def main():
    builtins.__import__ = _import
    atexit.register(_at_exit)
    target = sys.argv[2:]
    if target[:1] == ["-m"]:
        sys.argv = [target[1], *target[2:]]
        runpy.run_module(target[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = target
        sys.path.insert(0, target[0].rsplit("/", 1)[0] if "/" in target[0] else ".")
        runpy.run_path(target[0], run_name="__main__")


if __name__ == "__main__":
    main()
