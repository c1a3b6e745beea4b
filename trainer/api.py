"""The trainer's small public API, the only door the GUI uses.

Nothing here imports torch at import time: planning and checks stay instant, and the
heavy modules load when a run starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config import TrainingConfig
from trainer.events import Event, EventCallback
from trainer.launch import accelerate_command

__all__ = [
    "Event",
    "EventCallback",
    "accelerate_command",
    "check_start",
    "detect_model",
    "download_model",
    "estimate",
    "gpu_memory_gib",
    "make_plan",
    "model_needs_download",
    "preflight",
    "run_tool",
    "queue_add",
    "queue_change",
    "queue_file",
    "queue_read",
    "render_grid",
    "run_queue",
    "run_training",
]

if TYPE_CHECKING:
    from trainer.plan.training_plan import Plan


def make_plan(cfg: TrainingConfig) -> Plan:
    """The dry-run plan: the dataset resolved once (a dataset TOML applied, folders
    scanned, images bucketed), then its steps, buckets and saves. Loads no model.

    Raises trainer.data.folders.DatasetError for a missing or badly laid out folder or an
    unusable dataset TOML."""
    from trainer.plan.training_plan import build_plan

    return build_plan(cfg)


def preflight(cfg: TrainingConfig) -> tuple[list, list[str]]:
    """Disk and device checks before any model loads: (problems, warnings)."""
    from trainer.run.preflight import run_preflight

    return run_preflight(cfg)


def check_start(cfg: TrainingConfig) -> tuple[list, list[str]]:
    """Every check a run makes before it loads a model, as `python -m trainer` and its dry
    run make them (settings, dataset, repeats, disk, device, model file, optimizer
    arguments, the state to resume from, the output's lock): (problems, warnings)."""
    from trainer.run.checks import check_before_loading

    checked = check_before_loading(cfg)
    return list(checked.problems), list(checked.warnings)


def detect_model(path: str):
    """What kind of base model `path` is (no weights loaded): trainer.models ModelInfo."""
    from trainer.models import detect_model as _detect

    return _detect(path)


def model_needs_download(path: str) -> bool:
    """Whether `path` is a Hugging Face id (owner/name) that is neither a local path nor
    usable from the cache yet, i.e. Start must download it first."""
    from pathlib import Path

    from trainer.models import ModelLoadError, detect_model
    from trainer.models.detect import SINGLE_FILE_SUFFIXES
    from trainer.models.hub import HUB_ID

    text = str(path).strip()
    if (
        not HUB_ID.match(text)
        or text.lower().endswith(SINGLE_FILE_SUFFIXES)
        or Path(text).expanduser().exists()
    ):
        return False
    try:
        detect_model(text)
    except ModelLoadError:
        return True
    return False


def download_model(
    repo_id: str, token: str | None = None, on_progress: Callable[[Any], None] | None = None
) -> str:
    """Download what training needs of a Hugging Face id into the Hugging Face cache
    (resumable; HF_ENDPOINT / HF_HUB_CACHE apply); returns the snapshot folder.

    `on_progress` gets trainer.models.hub.DownloadProgress (done, total, fraction) about
    twice a second. Raises trainer.models.hub.DownloadError with a message for the user;
    the token (else HF_TOKEN) goes to the Hub only, never to a file or a message."""
    from trainer.models.hub import download_pipeline

    return str(download_pipeline(repo_id.strip(), token=token, on_progress=on_progress))


def estimate(cfg: TrainingConfig, vram_gib: float | None = None, *, gpu: str | None = None, plan=None):
    """Peak GPU memory, fit on `vram_gib` GiB and time of this run, before anything loads:
    a trainer.estimate.Estimate (`.to_json()`). Seconds the first time (the run's own step
    on shape-only tensors), instant for settings already estimated. `plan` (make_plan's)
    gives the largest bucket, image count and step count. Raises ModelLoadError / ConfigError."""
    from trainer.estimate import estimate as _estimate

    return _estimate(cfg, vram_gib, gpu=gpu, plan=plan)


def gpu_memory_gib() -> float | None:
    """The memory of this machine's first CUDA GPU in GiB (None without one)."""
    from trainer.estimate import this_gpu_gib

    return this_gpu_gib()


def run_training(cfg: TrainingConfig, on_event: EventCallback, stop: threading.Event | None = None) -> int:
    """Train, reporting through `on_event`; blocks until done. Returns 0 done / stopped,
    1 training failure, 2 config or dataset problem. Never raises for those: an "error"
    event carries a message for a person (the traceback goes to the log file)."""
    from trainer.estimate import gpu_fit_warning
    from trainer.run.train import train_with_events

    return train_with_events(cfg, on_event, stop, fit_check=gpu_fit_warning)


UTILITIES = ("verify", "resize", "merge", "extract", "caption")


def run_tool(name: str, **options: Any) -> dict[str, Any]:
    """Run one Utility (trainer.tools: verify, resize, merge, extract, caption) with the
    options of its command (sd-scripts' names; merge with `base_model` bakes a checkpoint).

    Returns {"ok", "text", "path", "facts"}: `text` is the report for a person, or on a bad
    option or input the message naming it, or why the work failed (ok False; no traceback,
    no half-written file); `path` the file written, if any. Loads torch on first use."""
    if name not in UTILITIES:
        raise ValueError(f"unknown utility {name!r}; one of {', '.join(UTILITIES)}")
    from trainer.tools.lora_io import ToolError
    from trainer.tools.run import run_utility

    try:
        result = run_utility(name, options)
    except ToolError as err:
        return {"ok": False, "text": str(err), "path": None, "facts": {}}
    except (OSError, RuntimeError) as err:  # the disk, the memory: said in one line, never a traceback
        return {"ok": False, "text": f"{name} failed: {err}", "path": None, "facts": {}}
    return {
        "ok": True,
        "text": result.text(),
        "path": str(result.path) if result.path else None,
        "facts": result.facts,
    }


# ---- the run queue, sweeps and the comparison grid (trainer.queue, trainer.sampling.grid) ----
def queue_file() -> Path:
    """The app's queue file (~/.lora_gui/queue.json), the one `python -m trainer queue` uses."""
    from trainer.queue.store import DEFAULT_QUEUE_FILE

    return DEFAULT_QUEUE_FILE


def queue_read(path: str | Path):
    """The queue (trainer.queue.Queue: entries with id, name, state, note, message, outputs).
    Raises trainer.queue.QueueError for a file that is not a queue."""
    from trainer.queue.store import read_queue

    return read_queue(Path(path))


def queue_add(path: str | Path, settings: dict[str, Any], sweep: dict[str, list] | None = None) -> list:
    """Queue the settings (a preset dict), one entry per variant of `sweep`; each checked
    first. Raises ConfigError with every problem of every variant, or QueueError."""
    from trainer.queue.add import add_settings

    raw = {**settings, "sweep": sweep} if sweep else dict(settings)
    return add_settings(Path(path), raw, "the page")


def queue_change(path: str | Path, action: str, entry_id: int = 0) -> None:
    """ "remove" entry `entry_id`, "up" / "down" (move it), or "stop_after_current".
    Raises QueueError (no such entry, or it is running)."""
    from trainer.queue.cli import change

    change(Path(path), action, entry_id)


def run_queue(path: str | Path, on_event: EventCallback, stop: threading.Event | None = None):
    """Run the queue's waiting entries one after another (blocks); returns the queue."""
    from trainer.queue.runner import run_queue as _run

    return _run(Path(path), on_event, stop)


def render_grid(
    model: str, loras: list[str], prompts: list[str], weights: list[float], out: str | Path, **options: Any
) -> Path:
    """The comparison grid PNG (base row + one per LoRA file, weight x prompt columns) at
    `out`. `options`: seed, steps, size, sampler, scale, negative (trainer.sampling.grid.GridSpec).
    Raises trainer.sampling.grid.GridError / ModelLoadError with a message for the user."""
    from trainer.sampling.grid import GridRenderer, GridSpec, save_grid

    spec = GridSpec(model, [Path(p) for p in loras], list(prompts), list(weights), **options)
    image = GridRenderer(model, sampler=spec.sampler).render(spec)
    return save_grid(image, Path(out), spec)
