"""The training plan, worked out before any model loads (no torch: it must be instant).

`build_plan(cfg)` scans the folders, places every image in its bucket and computes what
the run will do: images and repeats, buckets with counts, steps per epoch, total steps,
the files that will be saved, skipped files and advice. The CLI's --dry-run prints it
and the GUI shows it live, so a user sees "1,500 steps, 4 files" before waiting for a
model to load. `prepare_data(cfg)` is the same scan for the trainer to build its dataset.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from trainer.config.checks import parse_resolution  # the schema's one rule for "W,H"
from trainer.data.buckets import BucketChoice, BucketError, BucketSpec
from trainer.data.folders import FolderScan, ImageItem, Skipped, reg_repeat_counts, scan_dataset
from trainer.plan.saves import step_saves

# The seed guide's rule of thumb for a style LoRA without reg images is 5,000-10,000
# images x repeats. Only far outside it do we say anything, and only as a hint.
FEW_IMAGE_REPEATS = 100
MANY_IMAGE_REPEATS = 20_000


def bucket_spec(cfg: Any) -> BucketSpec:
    """The bucket settings of a config."""
    return BucketSpec(
        max_reso=parse_resolution(cfg.max_resolution),
        enable_bucket=bool(cfg.enable_bucket),
        min_bucket_reso=int(cfg.min_bucket_reso),
        max_bucket_reso=int(cfg.max_bucket_reso),
        bucket_reso_steps=int(cfg.bucket_reso_steps),
        bucket_no_upscale=bool(cfg.bucket_no_upscale),
    )


@dataclass
class PreparedData:
    """Scans with each image's bucket; images no bucket can hold moved to skipped.

    `choices[i]` belongs to `scan.items[i]`, `reg_choices[i]` to `reg_scan.items[i]`.
    """

    scan: FolderScan
    choices: list[BucketChoice]
    reg_scan: FolderScan | None = None
    reg_choices: list[BucketChoice] = field(default_factory=list)


def _place(scan: FolderScan, spec: BucketSpec) -> list[BucketChoice]:
    kept: list[ImageItem] = []
    choices: list[BucketChoice] = []
    for item in scan.items:
        try:
            choices.append(spec.choose(item.width, item.height))
            kept.append(item)
        except BucketError as err:
            scan.skipped.append(Skipped(str(item.path), str(err)))
    scan.items = kept
    return choices


def prepare_data(cfg: Any) -> PreparedData:
    """Scan the image (and reg) folder and bucket every image. Raises DatasetError."""
    spec = bucket_spec(cfg)
    ext = getattr(cfg, "caption_extension", ".txt") or ".txt"
    if str(getattr(cfg, "dataset_config", "") or "").strip():  # subsets from a TOML file
        from trainer.data.dataset_config import read_dataset_config, scan_subsets

        dc = read_dataset_config(cfg.dataset_config)
        scan = scan_subsets(dc, ext, is_reg=False)
        prepared = PreparedData(scan=scan, choices=_place(scan, spec))
        if any(s.is_reg for s in dc.subsets):
            prepared.reg_scan = scan_subsets(dc, ext, is_reg=True)
            prepared.reg_choices = _place(prepared.reg_scan, spec)
        return prepared
    scan = scan_dataset(cfg.train_data_dir, ext)
    prepared = PreparedData(scan=scan, choices=_place(scan, spec))
    reg_dir = getattr(cfg, "reg_data_dir", "") or ""
    if str(reg_dir).strip():
        prepared.reg_scan = scan_dataset(reg_dir, ext, is_reg=True)
        prepared.reg_choices = _place(prepared.reg_scan, spec)
    return prepared


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


def expanded_bucket_counts(prepared: PreparedData) -> tuple[Counter, int, int]:
    """Images x repeats per bucket (reg included), the train total and the reg total."""
    counts: Counter = Counter()
    train_total = 0
    for item, choice in zip(prepared.scan.items, prepared.choices):
        counts[choice.bucket] += item.repeats
        train_total += item.repeats
    reg_total = 0
    if prepared.reg_scan is not None:
        uses = reg_repeat_counts(prepared.reg_scan.items, train_total)
        for n, choice in zip(uses, prepared.reg_choices):
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


def _step_saves(cfg: Any, total_steps: int) -> list[str]:
    """`<name>-step<step:08d>.safetensors` every save_every_n_steps steps, before the last."""
    return step_saves(str(cfg.output_name), int(getattr(cfg, "save_every_n_steps", 0) or 0), total_steps)


def _config_dict(cfg: Any) -> dict:
    """The settings, without secrets: the plan is printed (--dry-run) and sent to the GUI."""
    from trainer.config.specs import SECRET_KEYS

    values = dict(cfg.model_dump()) if hasattr(cfg, "model_dump") else dict(vars(cfg))
    return {k: v for k, v in values.items() if k not in SECRET_KEYS}


def _advice(cfg: Any, train_total: int) -> list[dict]:
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
    dim = getattr(cfg, "network_dim", None)
    alpha = getattr(cfg, "network_alpha", None)
    if dim is not None and alpha is not None and float(alpha) > float(dim):
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
    optimizer = str(getattr(cfg, "optimizer", "")).lower()
    warmup = getattr(cfg, "lr_warmup", 0) or 0
    scheduler = str(getattr(cfg, "lr_scheduler", "")).lower()
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


def _note(code: str, text: str, **data: Any) -> dict:
    return {"code": code, "text": text, **data}


def _scan_notes(scans: list[FolderScan], ext: str) -> list[dict]:
    """The folder scans' warnings as notes; a sub-folder's missing captions by its numbers."""
    notes = []
    for scan in scans:
        missing = {
            f"{s['folder']}: {s['missing_captions']} of {s['images']} images have no caption file": s
            for s in scan.subsets
            if s.get("missing_captions")
        }
        for text in scan.warnings:
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


def build_plan(cfg: Any, prepared: PreparedData | None = None, num_processes: int | None = None) -> Plan:
    """Work out the run's plan from a config. Raises DatasetError for unusable folders.

    `prepared` reuses a scan the caller already has; `num_processes` is the number of
    GPUs/processes sharing each epoch (they split the batches); by default the config's.
    """
    if num_processes is None:
        num_processes = int(getattr(cfg, "num_processes", 1) or 1)
    from trainer.data.dataset_config import resolve_dataset_config

    cfg, dataset_notes = resolve_dataset_config(cfg)  # its batch size, resolution, ... (or none)
    prepared = prepared or prepare_data(cfg)
    batch_size = max(1, int(cfg.train_batch_size))
    accumulation = max(1, int(getattr(cfg, "gradient_accumulation_steps", 1) or 1))
    counts, train_total, reg_total = expanded_bucket_counts(prepared)

    # Batches never mix buckets, so each bucket rounds up on its own.
    steps_per_epoch = sum(math.ceil(n / batch_size) for n in counts.values())
    update_steps = max(1, math.ceil(steps_per_epoch / (max(1, num_processes) * accumulation)))
    max_epochs = int(getattr(cfg, "max_train_epochs", 0) or 0)
    epochs = max_epochs if max_epochs > 0 else int(cfg.epoch)
    max_steps = int(getattr(cfg, "max_train_steps", 0) or 0)
    if max_steps > 0:  # Kohya: max_train_steps wins over epochs
        total_steps = max_steps
        epochs = math.ceil(max_steps / update_steps)
    else:
        total_steps = epochs * update_steps

    scans = [prepared.scan] + ([prepared.reg_scan] if prepared.reg_scan else [])
    skipped = [{"path": s.path, "reason": s.reason} for sc in scans for s in sc.skipped]
    ext = str(getattr(cfg, "caption_extension", ".txt") or ".txt")
    notes = [_note("text", w) for w in dataset_notes] + _scan_notes(scans, ext)
    notes += [_note("skipped", f"skipped {s['path']}: {s['reason']}", **s) for s in skipped]
    notes += _advice(cfg, train_total)
    warnings = [n["text"] for n in notes]

    return Plan(
        config=_config_dict(cfg),
        images=len(prepared.scan.items),
        reg_images=len(prepared.reg_scan.items) if prepared.reg_scan else 0,
        buckets=[{"resolution": [w, h], "count": n} for (w, h), n in sorted(counts.items())],
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        total_steps=total_steps,
        saves=_step_saves(cfg, total_steps)
        + save_names(
            str(cfg.output_name),
            epochs,
            int(getattr(cfg, "save_every_n_epochs", 0) or 0),
            str(getattr(cfg, "save_model_as", "safetensors") or "safetensors"),
        ),
        skipped=skipped,
        warnings=warnings,
        notes=notes,
        subsets=[dict(s) for sc in scans for s in sc.subsets],
        image_repeats=train_total,
        reg_image_repeats=reg_total,
        update_steps_per_epoch=update_steps,
        batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
    )
