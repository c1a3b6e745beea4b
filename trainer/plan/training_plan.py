"""The training plan, worked out before any model loads (no torch: it must be instant).

`plan_dataset(data)` reads a ResolvedDataset (trainer.data.resolved: the settings, the
images in their buckets, the skipped files) and computes what the run will do: images
and repeats, buckets with counts, steps per epoch, total steps, the files that will be
saved, skipped files and advice. `build_plan(cfg)` is `resolve_dataset(cfg)` then
`plan_dataset`: the CLI's --dry-run prints it and the GUI shows it live (trainer.api), so
a user sees "1,500 steps, 4 files" before waiting for a model to load. A run resolves the
dataset once and hands the same value to the plan and to its TrainDataset.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from trainer.config import TrainingConfig
from trainer.data.folders import reg_repeat_counts
from trainer.data.resolved import ResolvedDataset, resolve_dataset
from trainer.plan.saves import step_saves

# The seed guide's rule of thumb for a style LoRA without reg images is 5,000-10,000
# images x repeats. Only far outside it do we say anything, and only as a hint.
FEW_IMAGE_REPEATS = 100
MANY_IMAGE_REPEATS = 20_000


@dataclass
class Plan:
    """What a run will do; `to_json` for programs, `to_text` for people."""

    config: dict
    images: int
    reg_images: int
    buckets: list[dict]  # [{"resolution": [w, h], "count": n}], n counts repeats
    steps_per_epoch: int
    epochs: int
    total_steps: int
    saves: list[str]
    skipped: list[dict]
    warnings: list[str]
    subsets: list[dict]
    # One per warning, in the same order: {"code", "text", ...data} so that a front-end can
    # say it in its own language. Codes: missing_captions (folder, missing, images, name,
    # ext), skipped (path, reason), few_repeats / many_repeats (total), alpha_above_rank
    # (alpha, dim), adafactor_warmup (warmup, scheduler), text (only the English text).
    notes: list[dict] = field(default_factory=list)
    image_repeats: int = 0  # training images x repeats per epoch
    reg_image_repeats: int = 0
    update_steps_per_epoch: int = 0
    batch_size: int = 1
    gradient_accumulation_steps: int = 1

    def to_json(self) -> dict:
        """The plan as a JSON-ready dict (the CLI's `--dry-run --json`)."""
        return json.loads(json.dumps(asdict(self), default=str))

    def to_text(self) -> str:
        """The plan as a person reads it, with the bucket table."""
        lines = [(f"Images: {self.images} training images, {self.image_repeats} with repeats per epoch")]
        if self.reg_images:
            lines.append(
                f"Regularisation: {self.reg_images} images, used {self.reg_image_repeats} times per epoch"
            )
        for s in self.subsets:
            kind = "reg " if s.get("is_reg") else ""
            lines.append(
                f"  {kind}{s['folder']}: {s['images']} images x {s['repeats']} "
                f"repeats, class token '{s['name']}'"
                + (f", {s['missing_captions']} without caption file" if s["missing_captions"] else "")
            )
        lines.append("")
        lines.append("Buckets (width x height: images x repeats):")
        for b in self.buckets:
            w, h = b["resolution"]
            lines.append(f"  {w:>5} x {h:<5} {b['count']:>7}")
        lines.append("")
        acc = (
            f", {self.update_steps_per_epoch} optimizer updates with gradient "
            f"accumulation {self.gradient_accumulation_steps}"
            if self.gradient_accumulation_steps > 1
            else ""
        )
        lines.append(f"Steps per epoch: {self.steps_per_epoch} (batch size {self.batch_size}{acc})")
        lines.append(f"Epochs: {self.epochs}")
        lines.append(f"Total steps: {self.total_steps}")
        lines.append("Files saved: " + ", ".join(self.saves))
        if self.skipped:
            lines.append("")
            lines.append(f"Skipped files ({len(self.skipped)}):")
            lines.extend(f"  {s['path']}: {s['reason']}" for s in self.skipped)
        listed = {f"skipped {s['path']}: {s['reason']}" for s in self.skipped}
        advice = [w for w in self.warnings if w not in listed]
        if advice:
            lines.append("")
            lines.append("Warnings:")
            lines.extend(f"  - {w}" for w in advice)
        return "\n".join(lines)


def expanded_bucket_counts(data: ResolvedDataset) -> tuple[Counter, int, int]:
    """Images x repeats per bucket (reg included), the train total and the reg total."""
    counts: Counter = Counter()
    train_total = 0
    for item, choice in zip(data.scan.items, data.choices, strict=True):
        counts[choice.bucket] += item.repeats
        train_total += item.repeats
    reg_total = 0
    if data.reg_scan is not None:
        uses = reg_repeat_counts(data.reg_scan.items, train_total)
        for n, choice in zip(uses, data.reg_choices, strict=True):
            if n:
                counts[choice.bucket] += n
                reg_total += n
    return counts, train_total, reg_total


def save_names(output_name: str, epochs: int, every: int, ext: str = "safetensors") -> list[str]:
    """Files the run writes: `<name>-<epoch:06d>` after every N-th epoch before the
    last, then the final `<name>` (epoch 10, every 3 -> 3, 6, 9 and final)."""
    ext = ext.lstrip(".") or "safetensors"
    names = []
    if every and every > 0:
        names = [f"{output_name}-{e:06d}.{ext}" for e in range(1, epochs) if e % every == 0]
    return names + [f"{output_name}.{ext}"]


def _saves(cfg: TrainingConfig, epochs: int, total_steps: int) -> list[str]:
    """`<name>-step<step:08d>` every save_every_n_steps steps, then the epoch saves and the final file."""
    steps = step_saves(cfg.output_name, cfg.save_every_n_steps, total_steps)
    return steps + save_names(cfg.output_name, epochs, cfg.save_every_n_epochs, cfg.save_model_as)


def _config_dict(cfg: TrainingConfig) -> dict:
    """The settings, without secrets: the plan is printed (--dry-run) and sent to the GUI."""
    from trainer.config.specs import SECRET_KEYS

    return {k: v for k, v in cfg.model_dump().items() if k not in SECRET_KEYS}


def _advice(cfg: TrainingConfig, train_total: int) -> list[dict]:
    """The seed guide's advice, only where it applies, as plan notes."""
    notes = []
    if train_total < FEW_IMAGE_REPEATS:
        notes.append(
            _note(
                "few_repeats",
                f"One epoch is {train_total} images x repeats. Fine for a character; for a "
                f"style the guide found 5,000-10,000 works well (e.g. 100 images x 50-100 "
                f"repeats).",
                total=train_total,
            )
        )
    elif train_total > MANY_IMAGE_REPEATS:
        notes.append(
            _note(
                "many_repeats",
                f"One epoch is {train_total:,} images x repeats, which makes long epochs; "
                f"the guide found 5,000-10,000 enough for a style. Lower the repeats in the "
                f"folder names if the LoRA overtrains.",
                total=train_total,
            )
        )
    dim, alpha = cfg.network_dim, cfg.network_alpha
    if alpha > dim:
        notes.append(
            _note(
                "alpha_above_rank",
                f"network_alpha ({float(alpha):g}) is larger than network_dim ({dim}): "
                f"rank must be >= alpha, otherwise the LoRA is scaled up and training "
                f"becomes unstable. Try alpha between 1 and half the rank.",
                alpha=float(alpha),
                dim=dim,
            )
        )
    optimizer, warmup, scheduler = cfg.optimizer.lower(), cfg.lr_warmup, cfg.lr_scheduler.lower()
    if optimizer == "adafactor" and warmup != 0 and scheduler != "adafactor":
        notes.append(
            _note(
                "adafactor_warmup",
                f"Adafactor with LR warmup {warmup}% and the '{scheduler}' scheduler fails in "
                f"the Kohya GUI: set LR warmup to 0, or choose the 'adafactor' LR scheduler.",
                warmup=warmup,
                scheduler=scheduler,
            )
        )
    return notes


def _epochs_and_steps(cfg: TrainingConfig, update_steps: int) -> tuple[int, int]:
    """(epochs, total optimizer steps): max_train_epochs over epoch; max_train_steps, as in
    Kohya, over both."""
    epochs = cfg.max_train_epochs if cfg.max_train_epochs > 0 else cfg.epoch
    if cfg.max_train_steps > 0:
        return math.ceil(cfg.max_train_steps / update_steps), cfg.max_train_steps
    return epochs, epochs * update_steps


def _note(code: str, text: str, **data: Any) -> dict:
    return {"code": code, "text": text, **data}


def _scan_notes(data: ResolvedDataset) -> list[dict]:
    """The dataset's warnings as notes; a sub-folder's missing captions by its numbers."""
    ext = data.cfg.caption_extension or ".txt"
    missing = {
        f"{s['folder']}: {s['missing_captions']} of {s['images']} images have no caption file": s
        for s in (folder.summary() for folder in data.subsets)
        if s.get("missing_captions")
    }
    notes = []
    for text in data.warnings:
        sub = next((s for lead, s in missing.items() if text.startswith(lead)), None)
        if sub is None:
            notes.append(_note("text", text))
        else:
            notes.append(
                _note(
                    "missing_captions",
                    text,
                    folder=sub["folder"],
                    missing=sub["missing_captions"],
                    images=sub["images"],
                    name=sub["name"],
                    ext=ext,
                )
            )
    return notes


def build_plan(cfg: TrainingConfig, num_processes: int | None = None) -> Plan:
    """The plan of a config: its dataset resolved (trainer.data.resolved), then planned.
    Raises DatasetError for unusable folders or an unusable dataset TOML."""
    return plan_dataset(resolve_dataset(cfg), num_processes)


def plan_dataset(data: ResolvedDataset, num_processes: int | None = None) -> Plan:
    """Work out the run's plan from its resolved dataset (and the settings it carries).

    `num_processes` is the number of GPUs/processes sharing each epoch (they split the
    batches); by default the config's.
    """
    cfg = data.cfg
    processes = num_processes if num_processes is not None else cfg.num_processes
    counts, train_total, reg_total = expanded_bucket_counts(data)

    # Batches never mix buckets, so each bucket rounds up on its own.
    steps_per_epoch = sum(math.ceil(n / cfg.train_batch_size) for n in counts.values())
    update_steps = max(1, math.ceil(steps_per_epoch / (max(1, processes) * cfg.gradient_accumulation_steps)))
    epochs, total_steps = _epochs_and_steps(cfg, update_steps)

    skipped = [{"path": s.path, "reason": s.reason} for s in data.skipped]
    notes = _scan_notes(data)
    notes += [_note("skipped", f"skipped {s['path']}: {s['reason']}", **s) for s in skipped]
    notes += _advice(cfg, train_total)
    warnings = [n["text"] for n in notes]

    return Plan(
        config=_config_dict(cfg),
        images=len(data.scan.items),
        reg_images=len(data.reg_scan.items) if data.reg_scan else 0,
        buckets=[{"resolution": [w, h], "count": n} for (w, h), n in sorted(counts.items())],
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        total_steps=total_steps,
        saves=_saves(cfg, epochs, total_steps),
        skipped=skipped,
        warnings=warnings,
        notes=notes,
        subsets=[folder.summary() for folder in data.subsets],
        image_repeats=train_total,
        reg_image_repeats=reg_total,
        update_steps_per_epoch=update_steps,
        batch_size=cfg.train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
    )
