"""Scanning a Kohya-style dataset folder (no torch, no pixel decoding).

The image folder is a parent folder of `<repeats>_<name>` sub-folders, e.g.
`train/50_mycar/img001.png` with its caption in `img001.txt`. Layout mistakes are the
most common failure our users hit ("no data found"), so every problem is reported with
what was found and what was expected, and a bad file is skipped with its reason
rather than ending the run.

`trainer.data.resolved.resolve_dataset` calls the scan once per plan or run (for a dataset
TOML, through `trainer.data.dataset_config.scan_subsets`); the plan and the run read its
result, never the folders again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trainer.data.caption_files import caption_for, inside
from trainer.data.images import IMAGE_EXTENSIONS, ImageError, probe_image

LAYOUT_EXAMPLE = (
    "Expected layout: the folder you choose holds one sub-folder per concept, named "
    "<repeats>_<name>, with the images (and optional captions) inside, e.g.\n"
    "  train/50_mychar/img001.png + img001.txt\n"
    "  train/50_mychar/img002.jpg + img002.txt\n"
    "Here 50 is how often each image is repeated per epoch and 'mychar' is the class "
    "token, used as the caption of images without a caption file."
)


# Repeats a folder may ask for, and images x repeats one epoch may hold: a `100000000_x`
# folder would otherwise fill the memory with its entries before training starts.
MAX_REPEATS = 10_000
MAX_IMAGE_REPEATS = 10_000_000


class DatasetError(Exception):
    """The dataset folder cannot be used at all (missing, empty, wrong layout, too many
    repeats). `key`: the setting that names it (train_data_dir, reg_data_dir, dataset_config)."""

    def __init__(self, message: str, key: str = "train_data_dir"):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class ImageItem:
    """One training image: where it is, its caption, and how it is repeated."""

    path: Path
    caption: str
    repeats: int
    subset: str  # the sub-folder's name, e.g. "50_mycar"
    width: int
    height: int
    is_reg: bool = False
    has_caption_file: bool = False
    # every non-empty line of the caption file (enable_wildcard picks one per step)
    caption_lines: tuple[str, ...] = ()


@dataclass
class Skipped:
    """A file that will not be trained on, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class ImageFolder:
    """One folder of images as the run uses it: a `<repeats>_<name>` sub-folder or a
    dataset TOML subset, with what its scan found."""

    path: Path
    repeats: int
    class_token: str  # the caption of its images without a caption file
    caption_extension: str  # with its dot, e.g. ".txt"
    is_reg: bool
    images: int  # usable images (before bucketing)
    missing_captions: int

    def summary(self) -> dict:
        """The plan's row: folder, repeats, name (the class token), images, missing_captions, is_reg."""
        return {
            "folder": self.path.name,
            "repeats": self.repeats,
            "name": self.class_token,
            "images": self.images,
            "missing_captions": self.missing_captions,
            "is_reg": self.is_reg,
        }


@dataclass
class FolderScan:
    """Everything found under one dataset folder (or the folders of a dataset TOML)."""

    items: list[ImageItem] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    folders: list[ImageFolder] = field(default_factory=list)

    @property
    def subsets(self) -> list[dict]:
        """One summary dict per folder (ImageFolder.summary)."""
        return [folder.summary() for folder in self.folders]


def parse_repeats(folder_name: str) -> tuple[int, str] | None:
    """ "50_my car" -> (50, "my car"); None when the prefix is not a whole number >= 1."""
    prefix, sep, name = folder_name.partition("_")
    if not sep or not prefix.isdecimal():
        return None
    repeats = int(prefix)
    return (repeats, name) if repeats >= 1 else None


def _visible(path: Path) -> bool:
    # Hidden files (.DS_Store, macOS "._img.png" forks) are not images; Kohya's glob
    # never sees them either.
    return not path.name.startswith(".")


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir()
    )


def _normal_extension(caption_extension: str) -> str:
    ext = caption_extension.strip() or ".txt"
    return ext if ext.startswith(".") else "." + ext


def _scan_subset(
    folder: Path, repeats: int, name: str, root: Path, ext: str, is_reg: bool, scan: FolderScan
) -> None:
    """Add one <repeats>_<name> folder's images to scan."""
    images = 0
    missing = 0
    for path in _image_files(folder):
        if not inside(path, root):
            scan.skipped.append(Skipped(str(path), "symlink pointing outside the dataset folder"))
            continue
        try:
            width, height, animated = probe_image(path)
        except ImageError as err:
            scan.skipped.append(Skipped(str(path), str(err)))
            continue
        if animated:
            scan.warnings.append(f"{path} is animated: only its first frame is trained")
        caption, has_file, lines = caption_for(path.parent / (path.stem + ext), name, root, scan.warnings)
        missing += not has_file
        images += 1
        scan.items.append(
            ImageItem(
                path=path,
                caption=caption,
                repeats=repeats,
                subset=folder.name,
                width=width,
                height=height,
                is_reg=is_reg,
                has_caption_file=has_file,
                caption_lines=lines,
            )
        )
    nested = [p.name for p in sorted(folder.iterdir()) if p.is_dir() and _visible(p) and _image_files(p)]
    if nested:
        scan.warnings.append(
            f"{folder}: sub-folders {', '.join(nested)} are not scanned; images must sit "
            f"directly in the <repeats>_<name> folder"
        )
    if images == 0:
        scan.warnings.append(f"{folder} contains no usable images (.png .jpg .jpeg .webp .bmp)")
    elif missing:
        scan.warnings.append(
            f"{folder.name}: {missing} of {images} images have no caption file ({ext}); "
            f"they are captioned with the class token '{name}'"
        )
    scan.folders.append(ImageFolder(folder, repeats, name, ext, is_reg, images, missing))


def _why_ignored(folder_name: str) -> str:
    """Why a sub-folder's name is no <repeats>_<name> (parse_repeats gave None)."""
    prefix, sep, _ = folder_name.partition("_")
    if sep and prefix.isdecimal():
        return "the repeat count must be at least 1"
    return f"its name must start with the number of repeats and an underscore, e.g. '10_{folder_name}'"


def repeats_problem(repeats: int, where: str) -> str | None:
    """Why `repeats` is more than a folder may ask for (MAX_REPEATS), or None."""
    if repeats <= MAX_REPEATS:
        return None
    shown = f"{repeats:,}" if repeats < 10**15 else f"a {len(str(repeats))}-digit number of"
    return f"{where} asks for {shown} repeats, more than the {MAX_REPEATS:,} a folder may have"


def _named_folders(folders: list[Path]) -> tuple[list[tuple[Path, int, str]], list[tuple[str, str]]]:
    """(the <repeats>_<name> folders with their repeats and name, the ignored ones with why).
    Raises DatasetError naming every folder with more repeats than MAX_REPEATS."""
    named: list[tuple[Path, int, str]] = []
    ignored: list[tuple[str, str]] = []
    too_many: list[str] = []
    for folder in folders:
        parsed = parse_repeats(folder.name)
        if parsed is None:
            ignored.append((folder.name, _why_ignored(folder.name)))
            continue
        why = repeats_problem(parsed[0], f"folder '{folder.name}'")
        if why:
            too_many.append(why)
        named.append((folder, *parsed))
    if too_many:
        raise DatasetError(
            "; ".join(too_many) + ". Lower the number at the start of the folder name (the guide's "
            "5,000-10,000 images x repeats per epoch need far fewer)"
        )
    return named, ignored


def _no_folders_message(root: Path, ignored: list[tuple[str, str]]) -> str:
    """What was found in a dataset folder without a usable <repeats>_<name> sub-folder."""
    loose = len(_image_files(root))
    if loose:
        found = f"it holds {loose} images directly, but images must be inside <repeats>_<name> sub-folders"
        if parse_repeats(root.name):
            found += f" (choose its parent folder '{root.parent}' instead)"
    else:
        found = "it has no <repeats>_<name> sub-folders"
    if ignored:
        found += "; these sub-folders are ignored:" + "".join(f"\n  '{name}': {why}" for name, why in ignored)
    return found


def scan_dataset(root: str | Path, caption_extension: str = ".txt", is_reg: bool = False) -> FolderScan:
    """Find the images, captions and repeats under a Kohya-style dataset folder.

    Reads only image headers, so thousands of images scan in seconds. Raises
    DatasetError (with the expected layout) when the folder cannot be used at all,
    naming each ignored sub-folder and why.
    """
    kind = "regularisation folder" if is_reg else "image folder"
    key = "reg_data_dir" if is_reg else "train_data_dir"
    if not str(root).strip():
        raise DatasetError(
            f"No {kind} is set: choose the folder that holds the "
            f"<repeats>_<name> sub-folders.\n{LAYOUT_EXAMPLE}",
            key,
        )
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"The {kind} '{root}' does not exist.\n{LAYOUT_EXAMPLE}", key)
    if not root.is_dir():
        raise DatasetError(f"The {kind} '{root}' is a file, not a folder.\n{LAYOUT_EXAMPLE}", key)
    root_resolved = root.resolve()
    ext = _normal_extension(caption_extension)
    scan = FolderScan()
    try:
        children = sorted(p for p in root.iterdir() if _visible(p))
    except OSError as err:
        raise DatasetError(f"Cannot read the {kind} '{root}': {err}", key) from None
    if not children:
        raise DatasetError(f"The {kind} '{root}' is empty.\n{LAYOUT_EXAMPLE}", key)
    try:
        named, ignored = _named_folders([p for p in children if p.is_dir()])
    except DatasetError as exc:
        raise DatasetError(f"In the {kind} '{root}': {exc}", key) from None
    for folder, repeats, name in named:
        try:
            _scan_subset(folder, repeats, name, root_resolved, ext, is_reg, scan)
        except OSError as err:  # e.g. no permission to list the folder
            ignored.append((folder.name, f"cannot read it ({err})"))
    scan.warnings[:0] = [f"skipped folder '{name}': {why}" for name, why in ignored]
    if not scan.folders:
        found = _no_folders_message(root, ignored)
        raise DatasetError(f"No training data in the {kind} '{root}': {found}.\n{LAYOUT_EXAMPLE}", key)
    if not scan.items:
        problems = "".join(f"\n  {s.path}: {s.reason}" for s in scan.skipped[:10])
        raise DatasetError(
            f"No usable images in the {kind} '{root}' (sub-folders: "
            f"{', '.join(f.path.name for f in scan.folders)}).{problems}\n{LAYOUT_EXAMPLE}",
            key,
        )
    return scan


def scan_subset_folder(
    folder: Path, repeats: int, class_token: str, caption_extension: str, is_reg: bool, scan: FolderScan
) -> None:
    """Add one folder of images with explicit repeats and class token (a dataset_config
    subset) to scan, checked as a <repeats>_<name> folder is."""
    try:
        _scan_subset(
            folder, repeats, class_token, folder.resolve(), _normal_extension(caption_extension), is_reg, scan
        )
    except OSError as err:
        scan.warnings.append(f"skipped folder '{folder}': cannot read it ({err})")


def reg_repeat_counts(reg_items: list[ImageItem], target: int) -> list[int]:
    """How many times each reg image is used per epoch so reg images match the
    training images' count (Kohya's round-robin).

    The first pass takes each reg image with its folder's repeats until the target is
    reached (this may overshoot by a few, as in Kohya); later passes add one use to
    each image in turn.
    """
    counts = [0] * len(reg_items)
    if not reg_items or target <= 0:
        return counts
    n = 0
    for i, item in enumerate(reg_items):
        counts[i] = item.repeats
        n += item.repeats
        if n >= target:
            return counts
    while n < target:
        for i in range(len(reg_items)):
            counts[i] += 1
            n += 1
            if n >= target:
                break
    return counts
