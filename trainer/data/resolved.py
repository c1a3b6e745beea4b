"""The run's dataset, resolved once into one value (no torch, no pixel decoding).

The data phase flows one way:

    cfg (TrainingConfig)
      -> resolve_dataset(cfg)   a dataset TOML read and its run-wide settings applied
                                (trainer.data.dataset_config), the folders scanned for images
                                and captions (trainer.data.folders), every image placed in
                                its bucket (trainer.data.buckets)
      -> ResolvedDataset        the settings, folders, images, buckets, skipped files, notes
      -> the plan               trainer.plan.training_plan.plan_dataset: buckets, steps, saves
         preflight              trainer.run.preflight and the resume check on `data.cfg`
         the run                trainer.run.data builds its TrainDataset from it

`resolve_dataset` is the only place that reads the dataset TOML or the image folders for a
plan or a run; everything after it reads the value. Raises DatasetError for a folder or
dataset TOML that cannot be used (the CLI and the run exit with 2 on it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trainer.config import TrainingConfig, parse_resolution  # the schema's one rule for "W,H"
from trainer.data.buckets import BucketChoice, BucketError, BucketSpec
from trainer.data.dataset_config import apply_dataset_settings, read_dataset_config, scan_subsets
from trainer.data.folders import (
    MAX_IMAGE_REPEATS,
    DatasetError,
    FolderScan,
    ImageFolder,
    ImageItem,
    Skipped,
    scan_dataset,
)


@dataclass(frozen=True)
class ResolvedDataset:
    """Everything the plan and the run know about the dataset, worked out once.

    `choices[i]` is the bucket of `scan.items[i]`, `reg_choices[i]` that of
    `reg_scan.items[i]`; images no bucket can hold are among the scans' skipped files.
    """

    cfg: TrainingConfig  # the settings the run uses: a dataset TOML's run-wide values applied
    scan: FolderScan  # the training images with their captions, skipped files, warnings
    choices: tuple[BucketChoice, ...]
    reg_scan: FolderScan | None = None  # the regularisation images, when there are any
    reg_choices: tuple[BucketChoice, ...] = ()
    notes: tuple[str, ...] = ()  # what the dataset TOML set, and what of it is not used

    @property
    def scans(self) -> list[FolderScan]:
        return [self.scan] + ([self.reg_scan] if self.reg_scan is not None else [])

    @property
    def subsets(self) -> list[ImageFolder]:
        """Every image folder (training, then reg): path, repeats, class token, caption
        extension, reg flag and what was found in it."""
        return [folder for scan in self.scans for folder in scan.folders]

    @property
    def skipped(self) -> list[Skipped]:
        """The files that will not be trained on, and why."""
        return [s for scan in self.scans for s in scan.skipped]

    @property
    def warnings(self) -> list[str]:
        """The dataset TOML's notes, then what the scans found worth saying."""
        return [*self.notes, *(w for scan in self.scans for w in scan.warnings)]


def bucket_spec(cfg: TrainingConfig) -> BucketSpec:
    """The bucket settings of a config."""
    return BucketSpec(
        max_reso=parse_resolution(cfg.max_resolution),
        enable_bucket=cfg.enable_bucket,
        min_bucket_reso=cfg.min_bucket_reso,
        max_bucket_reso=cfg.max_bucket_reso,
        bucket_reso_steps=cfg.bucket_reso_steps,
        bucket_no_upscale=cfg.bucket_no_upscale,
    )


def _place(scan: FolderScan, spec: BucketSpec) -> tuple[BucketChoice, ...]:
    """Each image's bucket; an image no bucket can hold moves to the skipped files."""
    kept: list[ImageItem] = []
    choices: list[BucketChoice] = []
    for item in scan.items:
        try:
            choices.append(spec.choose(item.width, item.height))
            kept.append(item)
        except BucketError as err:
            scan.skipped.append(Skipped(str(item.path), str(err)))
    scan.items = kept
    return tuple(choices)


Scans = tuple[TrainingConfig, FolderScan, FolderScan | None, list[str]]  # settings, train, reg, notes


def _from_dataset_config(cfg: TrainingConfig) -> Scans:
    """(the settings with the TOML's run-wide values, training scan, reg scan, notes)."""
    try:
        dc = read_dataset_config(cfg.dataset_config.strip())
        cfg, notes = apply_dataset_settings(cfg, dc)  # its batch size, resolution, ...
        scan = scan_subsets(dc, cfg.caption_extension, is_reg=False)
        reg_scan = None
        if any(s.is_reg for s in dc.subsets):
            reg_scan = scan_subsets(dc, cfg.caption_extension, is_reg=True)
    except DatasetError as exc:
        exc.key = "dataset_config"  # the setting to fix
        raise
    return cfg, scan, reg_scan, notes


def _from_folders(cfg: TrainingConfig) -> Scans:
    """(the settings as they are, the image folder's scan, the reg folder's scan, no notes)."""
    scan = scan_dataset(cfg.train_data_dir, cfg.caption_extension)
    reg_scan = None
    if cfg.reg_data_dir.strip():
        reg_scan = scan_dataset(cfg.reg_data_dir, cfg.caption_extension, is_reg=True)
    return cfg, scan, reg_scan, []


def _check_epoch_size(scan: FolderScan, key: str) -> None:
    """Refuse an epoch of more than MAX_IMAGE_REPEATS images x repeats (its entries are held
    in memory; the reg images match the training count), naming the biggest folders."""
    per_folder: dict[str, int] = {}
    for item in scan.items:
        per_folder[item.subset] = per_folder.get(item.subset, 0) + item.repeats
    total = sum(per_folder.values())
    if total <= MAX_IMAGE_REPEATS:
        return
    biggest = sorted(per_folder.items(), key=lambda kv: -kv[1])[:3]
    raise DatasetError(
        f"One epoch would be {total:,} images x repeats, more than a run can hold "
        f"({MAX_IMAGE_REPEATS:,}); the biggest folders: "
        + ", ".join(f"'{name}' ({n:,})" for name, n in biggest)
        + ". Lower the repeats in the folder names (or num_repeats in the dataset_config).",
        key,
    )


def with_repeats(scan: FolderScan, repeats: int) -> FolderScan:
    """`scan` with every folder and image repeated `repeats` times (the num_repeats setting)."""
    return FolderScan(
        items=[replace(item, repeats=repeats) for item in scan.items],
        skipped=scan.skipped,
        warnings=scan.warnings,
        folders=[replace(folder, repeats=repeats) for folder in scan.folders],
    )


def resolve_dataset(cfg: TrainingConfig) -> ResolvedDataset:
    """The dataset of `cfg`, resolved once: settings, folders, images and their buckets.

    Raises DatasetError for an unusable folder or dataset TOML (a value of the TOML that
    the settings refuse included)."""
    cfg, scan, reg_scan, notes = (
        _from_dataset_config(cfg) if cfg.dataset_config.strip() else _from_folders(cfg)
    )
    if cfg.num_repeats > 0:  # the setting (a sweep's value) wins over the folder names
        scan = with_repeats(scan, cfg.num_repeats)
    _check_epoch_size(scan, "dataset_config" if cfg.dataset_config.strip() else "train_data_dir")
    spec = bucket_spec(cfg)
    return ResolvedDataset(
        cfg=cfg,
        scan=scan,
        choices=_place(scan, spec),
        reg_scan=reg_scan,
        reg_choices=_place(reg_scan, spec) if reg_scan is not None else (),
        notes=tuple(notes),
    )
