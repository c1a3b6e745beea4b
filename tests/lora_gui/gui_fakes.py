"""What the GUI tests share: a fake trainer api (no model, no torch, events on demand),
form values, small files, and waiting for a condition or a free port.

Torch-free like lora_gui itself, so GUI test runs never import torch; the trainer's
tests share tests/helpers.py instead.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import FIELDS, Problem
from trainer.events import Event
from trainer.models.detect import ModelInfo


def FakeInfo(
    arch: str,
    v_prediction_hint: bool = False,
    format: str = "diffusers",
    message: str = "",
    summary: str = "",
) -> ModelInfo:
    """The trainer's own ModelInfo (no torch in it), so the fakes follow its fields."""
    return ModelInfo(arch, v_prediction_hint, format, message, summary=summary)


class FakeModelError(Exception):
    """Stands in for trainer.models.ModelLoadError."""


def filled_values(tmp: Path, **overrides: Any) -> dict[str, Any]:
    """Every field at its default, with the three required paths filled in."""
    values = {name: spec.default for name, spec in FIELDS.items()}
    (tmp / "model").mkdir(exist_ok=True)
    (tmp / "train").mkdir(exist_ok=True)
    values.update(
        pretrained_model_name_or_path=str(tmp / "model"),
        train_data_dir=str(tmp / "train"),
        output_dir=str(tmp / "out"),
        output_name="mylora",
        mixed_precision="no",
        optimizer="AdamW",
    )
    values.update(overrides)
    return values


@dataclass
class FakeApi:
    """Mimics trainer.api. `gate` holds a run after its first step until set."""

    steps: int = 3
    gate: threading.Event | None = None
    preflight_problems: list = field(default_factory=list)
    fail_with: str | None = None
    raise_exc: Exception | None = None
    runs: list = field(default_factory=list)
    sample_prompts: list = field(default_factory=list)  # a small real PNG per prompt and step
    extra_events: list = field(default_factory=list)  # emitted before the run finishes

    def make_plan(self, cfg):
        if not Path(cfg.train_data_dir).is_dir():
            raise ValueError(f"the image folder {cfg.train_data_dir} does not exist")
        return {
            "images": 4,
            "reg_images": 0,
            "steps_per_epoch": 40,
            "epochs": cfg.epoch,
            "total_steps": 40 * cfg.epoch,
            "buckets": [{"resolution": [512, 512], "count": 3}, {"resolution": [576, 448], "count": 1}],
            "saves": [f"{cfg.output_name}.safetensors"],
            "skipped": [{"path": "10_x/notes.pdf", "reason": "not an image"}],
            "warnings": ["images x repeats is 40: the guide suggests 5,000-10,000 for a style"],
            "subsets": [
                {"folder": "10_mychar", "repeats": 10, "name": "mychar", "images": 4, "missing_captions": 1}
            ],
        }

    def preflight(self, cfg):
        return list(self.preflight_problems), ["a fake warning"]

    def gpu_memory_gib(self):
        return None

    def estimate(self, cfg, vram_gib=None, *, gpu=None, plan=None):  # trainer.estimate's to_json
        peak = 3.0 * cfg.train_batch_size
        verdict = None if not vram_gib else ("fits" if peak <= vram_gib * 0.92 else "does not fit")
        return {
            "peak_vram_gib": peak,
            "vram_gib": vram_gib,
            "verdict": verdict,
            "breakdown_gib": {"weights": 2.0, "activations": 0.5 * cfg.train_batch_size},
            "advice": [{"change": "batch 1", "settings": {"train_batch_size": 1}, "peak_vram_gib": 3.0}]
            if verdict == "does not fit"
            else [],
            "recommended": "batch 1" if verdict == "does not fit" else None,
            "gpu": "RTX 3060 12GB",
            "seconds_per_step": 1.5,
            "run_seconds": 600.0,
        }

    def check_start(self, cfg):  # trainer.api's: preflight and the dataset, every problem at once
        problems, warnings = self.preflight(cfg)
        try:
            self.make_plan(cfg)
        except ValueError as exc:
            problems.append(Problem("train_data_dir", str(exc)))
        return problems, warnings

    def detect_model(self, path):
        if "sdxl" in path:
            return FakeInfo(
                "sdxl",
                format="single-file",
                message=f"SDXL single-file checkpoint {path}",
                summary="SDXL (single file, 13.4 MB)",
            )
        if "v2" in path:
            return FakeInfo("sd2", v_prediction_hint=True, message=f"SD 2.x folder {path}")
        if Path(path).exists():
            return FakeInfo("sd1", message=f"SD 1.x diffusers folder {path}")
        raise FakeModelError(f"{path} was not found: choose a diffusers folder")

    def run_training(self, cfg, on_event, stop=None):
        self.runs.append(cfg)
        if self.raise_exc is not None:
            raise self.raise_exc
        out = Path(cfg.output_dir)
        on_event(Event("started", {"output_dir": str(out), "output_name": cfg.output_name, "device": "cpu"}))
        on_event(Event("plan", {"images": 4, "total_steps": self.steps, "epochs": 1}))
        if self.fail_with:
            on_event(
                Event(
                    "error",
                    {
                        "message": self.fail_with,
                        "hint": "lower the batch size",
                        "log_file": str(out / "log.txt"),
                    },
                )
            )
            return 1
        for step in range(1, self.steps + 1):
            on_event(
                Event(
                    "step",
                    {
                        "step": step,
                        "total_steps": self.steps,
                        "epoch": 1,
                        "epochs": 1,
                        "loss": 0.5 / step,
                        "avg_loss": 0.4,
                        "lr": 1e-4,
                        "it_per_s": 2.0,
                        "eta_s": self.steps - step,
                    },
                )
            )
            for index, prompt in enumerate(self.sample_prompts):
                sample = write_png(out / "sample" / f"{cfg.output_name}_{step:06d}_{index:02d}.png")
                on_event(
                    Event(
                        "sample",
                        {"path": str(sample), "prompt": prompt, "step": step, "epoch": None, "index": index},
                    )
                )
            if step == 1 and self.gate is not None:
                self.gate.wait(10)
            if stop is not None and stop.is_set():
                path = out / f"{cfg.output_name}.safetensors"
                out.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"lora")
                on_event(Event("saved", {"path": str(path), "epoch": 1, "step": step, "final": True}))
                on_event(Event("stopped", {"path": str(path), "step": step, "reason": "Stop"}))
                return 0
        for event in self.extra_events:
            on_event(event)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{cfg.output_name}.safetensors"
        path.write_bytes(b"lora")
        on_event(Event("saved", {"path": str(path), "epoch": 1, "step": self.steps, "final": True}))
        on_event(Event("finished", {"path": str(path), "steps": self.steps, "seconds": 0.1}))
        return 0


def write_png(path: Path, size: int = 8) -> Path:
    """A real, small PNG (what the trainer's sampler writes, only tinier)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (200, 80, 40)).save(path)
    return path


def problem(key: str, message: str) -> Problem:
    return Problem(key, message)


def until(predicate, timeout: float = 5.0) -> None:
    """Wait until `predicate()` is true; fail if it is not within `timeout` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.01)


def free_port() -> int:
    """A localhost port no one listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
