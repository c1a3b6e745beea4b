"""`dataset_config`: sd-scripts' dataset TOML file in place of the image folder.

Kohya users with several image folders (each with its own repeats, class token, caption
extension, or marked as regularisation images) describe them in a TOML file:

    [general]
    shuffle_caption = true
    keep_tokens = 1

    [[datasets]]
    resolution = 768
    batch_size = 2

      [[datasets.subsets]]
      image_dir = 'C:/train/mychar'
      num_repeats = 10
      class_tokens = 'mychar'

      [[datasets.subsets]]
      image_dir = 'C:/reg/woman'
      is_reg = true

Read as sd-scripts reads it: a subset's value wins over its dataset's, which wins over
[general], which wins over the settings of the form or preset. Per subset here:
`image_dir`, `num_repeats`, `class_tokens` (the caption of images without a caption file),
`is_reg`, `caption_extension`. The other options (bucket, batch, caption and augmentation
options, `alpha_mask` = masked_loss) are one setting for the whole run in this trainer:
they become that setting, and one that differs between subsets is refused, naming them.
Fine-tuning (`metadata_file`) and ControlNet (`conditioning_data_dir`) subsets are not
LoRA datasets of this trainer and are refused too. Nothing in the file is executed.

Its place in the data phase: `trainer.data.resolved.resolve_dataset` reads the file here
(`read_dataset_config`), applies its run-wide settings to the config
(`apply_dataset_settings`) and scans its subsets' folders (`scan_subsets`), once; the plan,
preflight and the run read the ResolvedDataset it makes, never the file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, TrainingConfig, validate_values
from trainer.data.folders import DatasetError, FolderScan, repeats_problem, scan_subset_folder

# dataset-config key -> our setting, for the options that hold for the whole run
RUN_KEYS = {
    "batch_size": "train_batch_size",
    "resolution": "max_resolution",
    "enable_bucket": "enable_bucket",
    "min_bucket_reso": "min_bucket_reso",
    "max_bucket_reso": "max_bucket_reso",
    "bucket_reso_steps": "bucket_reso_steps",
    "bucket_no_upscale": "bucket_no_upscale",
    "shuffle_caption": "shuffle_caption",
    "keep_tokens": "keep_tokens",
    "flip_aug": "flip_aug",
    "color_aug": "color_aug",
    "random_crop": "random_crop",
    "caption_prefix": "caption_prefix",
    "caption_suffix": "caption_suffix",
    "caption_dropout_rate": "caption_dropout_rate",
    "caption_dropout_every_n_epochs": "caption_dropout_every_n_epochs",
    "caption_tag_dropout_rate": "caption_tag_dropout_rate",
    "alpha_mask": "masked_loss",
    "keep_tokens_separator": "keep_tokens_separator",
    "secondary_separator": "secondary_separator",
    "enable_wildcard": "enable_wildcard",
}
SUBSET_KEYS = ("image_dir", "num_repeats", "class_tokens", "is_reg", "caption_extension")
# sd-scripts options with no effect here (named in a note when set)
IGNORED = (
    "cache_info",
    "validation_split",
    "validation_seed",
    "network_multiplier",
    "resize_interpolation",
    "debug_dataset",
    "custom_attributes",
    "face_crop_aug_range",
    "token_warmup_min",
    "token_warmup_step",
    "caption_separator",
)
REFUSED = {
    "metadata_file": "fine-tuning datasets (metadata_file) are not supported; use image "
    "folders with caption files",
    "conditioning_data_dir": "ControlNet datasets (conditioning_data_dir) are not LoRA datasets "
    "of this trainer",
}


@dataclass(frozen=True)
class Subset:
    image_dir: Path
    num_repeats: int = 1
    class_tokens: str = ""
    is_reg: bool = False
    caption_extension: str = ""  # "" = the run's caption_extension


@dataclass(frozen=True)
class DatasetConfig:
    subsets: tuple[Subset, ...]
    settings: dict[str, Any] = field(default_factory=dict)  # our setting -> value
    notes: tuple[str, ...] = ()


def _load_toml(path: Path) -> dict:
    from trainer.files import load_toml

    try:
        return load_toml(path)
    except ValueError as exc:
        raise DatasetError(f"dataset_config: {exc}") from None


def _resolution(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value},{value}"
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]},{value[1]}"
    raise DatasetError(f"dataset_config: {where}resolution = {value!r} must be a number or [width, height]")


def read_dataset_config(path: str | Path) -> DatasetConfig:
    """The subsets and run-wide settings of a dataset TOML file. Raises DatasetError.

    A run, the dry run and the GUI's live summary each resolve the dataset once
    (trainer.data.resolved); the file is read again only when it changed (its size or
    modification time)."""
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError:
        return _read(path, None)  # _read names the problem
    return _read(path, (stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _read(path: Path, version: tuple[int, int] | None) -> DatasetConfig:
    data = _load_toml(path)
    general = data.get("general", {})
    datasets = data.get("datasets", [])
    if not isinstance(general, dict) or not isinstance(datasets, list) or not datasets:
        raise DatasetError(f"dataset_config: {path} has no [[datasets]] with [[datasets.subsets]]")
    notes = [f"dataset_config: [{k}] is not used" for k in sorted(set(data) - {"general", "datasets"})]
    reader = _Reader(path)
    reader.check_table(general, "[general]: ", SUBSET_KEYS[1:])
    subsets = [s for d, dataset in enumerate(datasets, 1) for s in reader.dataset(d, dataset, general)]
    if reader.ignored:
        notes.append(f"dataset_config: not used by this trainer: {', '.join(sorted(reader.ignored))}")
    if not any(not s.is_reg for s in subsets):
        raise DatasetError("dataset_config: every subset is is_reg = true; add the training images")
    return DatasetConfig(subsets=tuple(subsets), settings=reader.settings(), notes=tuple(notes))


class _Reader:
    """One pass over a dataset TOML's tables: checks each key, gathers the run-wide values
    (one value per setting, wherever it is set) and builds the subsets."""

    def __init__(self, path: Path):
        self.path = path
        self.seen: dict[str, tuple[Any, str]] = {}  # our setting -> (value, where it was set)
        self.ignored: set[str] = set()

    def settings(self) -> dict[str, Any]:
        return {name: value for name, (value, _) in self.seen.items()}

    def check_table(self, table: dict, where: str, allowed: tuple[str, ...]) -> None:
        """Refuse the keys of other dataset kinds and unknown keys; note the unused ones."""
        for key in table:
            if key in REFUSED:
                raise DatasetError(f"dataset_config: {where}{REFUSED[key]}")
            if key in IGNORED:
                self.ignored.add(key)
            elif key not in RUN_KEYS and key not in allowed:
                raise DatasetError(
                    f"dataset_config: {where}{key!r} is not a dataset option "
                    f"(sd-scripts' names: {', '.join(sorted([*RUN_KEYS, *SUBSET_KEYS]))})"
                )

    def run_value(self, key: str, value: Any, where: str) -> None:
        """Record a run-wide option; a second, different value for it is refused."""
        name = RUN_KEYS[key]
        if key == "resolution":
            value = _resolution(value, where)
        if name in self.seen and self.seen[name][0] != value:
            raise DatasetError(
                f"dataset_config: {key} is {self.seen[name][0]!r} in {self.seen[name][1]} but {value!r} in "
                f"{where.rstrip(': ') or 'another part'}; this trainer uses one {key} for the whole "
                "run: set it once, under [general]"
            )
        self.seen[name] = (value, where.rstrip(": ") or "[general]")

    def dataset(self, d: int, dataset: Any, general: dict) -> list[Subset]:
        """The subsets of the d-th [[datasets]] table."""
        if not isinstance(dataset, dict) or not dataset.get("subsets"):
            raise DatasetError(f"dataset_config: dataset {d} has no [[datasets.subsets]]")
        self.check_table(dataset, f"dataset {d}: ", (*SUBSET_KEYS[1:], "subsets"))
        own = {k: v for k, v in dataset.items() if k != "subsets"}
        return [
            self.subset(f"dataset {d} subset {s}: ", general, own, subset)
            for s, subset in enumerate(dataset["subsets"], 1)
        ]

    def subset(self, where: str, general: dict, dataset: dict, subset: Any) -> Subset:
        """One subset, its options merged as sd-scripts merges them (subset > dataset > general)."""
        if not isinstance(subset, dict):
            raise DatasetError(f"dataset_config: {where}must be a table of options")
        self.check_table(subset, where, SUBSET_KEYS)
        merged = {**general, **dataset, **subset}
        if not str(merged.get("image_dir", "")).strip():
            raise DatasetError(f"dataset_config: {where}image_dir is missing")
        for key, value in merged.items():
            if key in RUN_KEYS:
                origin = "[general]" if key not in subset and key not in dataset else where.rstrip(": ")
                self.run_value(key, value, origin + ": ")
        repeats = merged.get("num_repeats", 1)
        if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
            raise DatasetError(
                f"dataset_config: {where}num_repeats = {repeats!r} must be a whole number, 1 or more"
            )
        too_many = repeats_problem(repeats, f"{where}num_repeats")
        if too_many:
            raise DatasetError(f"dataset_config: {too_many}")
        image_dir = Path(str(merged["image_dir"])).expanduser()
        return Subset(
            image_dir=image_dir
            if image_dir.is_absolute()
            else self.path.parent / image_dir,  # beside the TOML
            num_repeats=repeats,
            class_tokens=str(merged.get("class_tokens", "") or ""),
            is_reg=bool(merged.get("is_reg", False)),
            caption_extension=str(merged.get("caption_extension", "") or ""),
        )


def apply_dataset_settings(cfg: TrainingConfig, dc: DatasetConfig) -> tuple[TrainingConfig, list[str]]:
    """(the config with the file's run-wide settings applied, notes: what it changed and
    what it does not use). Raises DatasetError for a value the settings do not allow."""
    changed = {k: v for k, v in dc.settings.items() if getattr(cfg, k) != v}
    notes = list(dc.notes)
    if changed:
        notes.append("dataset_config sets " + ", ".join(f"{k} = {v!r}" for k, v in changed.items()))
    try:
        return validate_values({**cfg.model_dump(), **dc.settings}), notes
    except ConfigError as exc:  # a value of the file that the settings do not allow
        raise DatasetError("dataset_config: " + "; ".join(str(p) for p in exc.problems)) from None


def scan_subsets(dc: DatasetConfig, caption_extension: str, is_reg: bool) -> FolderScan:
    """A FolderScan of the training (or reg) subsets, as scan_dataset makes for folders."""
    scan = FolderScan()
    for subset in dc.subsets:
        if subset.is_reg != is_reg:
            continue
        if not subset.image_dir.is_dir():
            raise DatasetError(f"dataset_config: image_dir {subset.image_dir} is not a folder")
        scan_subset_folder(
            subset.image_dir,
            subset.num_repeats,
            subset.class_tokens,
            subset.caption_extension or caption_extension,
            is_reg,
            scan,
        )
    if not is_reg and not scan.items:
        raise DatasetError("dataset_config: no usable images in the subsets' image_dir folders")
    return scan
