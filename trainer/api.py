"""The trainer's small public API, the only door the GUI uses.

Nothing here imports torch at import time: planning and checks stay instant, and the
heavy modules load when a run starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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
