"""caption: a .txt caption beside every image of a folder, and the tags they hold.

--method wd14 writes the tags whose probability reaches --threshold (character tags
first, then general ones, most likely first; ratings never), as sd-scripts'
tag_images_by_wd14_tagger.py does; blip and florence2 write one sentence. --prefix
("mychar, ") goes before every new caption. An existing caption is kept unless
--overwrite (Kohya users often fix captions by hand). Each caption file is written
atomically. The summary counts the tags of every caption in the folder, as the
ss_tag_frequency of the LoRA trained on it will.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from trainer.files import write_file_atomic
from trainer.tools.lora_io import ToolError
from trainer.tools.outputs import ToolResult, each

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
METHODS = ("wd14", "florence2", "blip")


def find_images(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def wd14_caption(
    tags: dict[str, tuple[float, int]],
    general: float,
    character: float,
    undesired: set[str],
    underscore: bool,
) -> list[str]:
    """The tags of one image over their thresholds: characters, then general, likeliest first."""
    from trainer.tools.captioners import CHARACTER, GENERAL

    kept = []
    for name, (prob, category) in tags.items():
        limit = {CHARACTER: character, GENERAL: general}.get(category)
        if limit is None or prob < limit:
            continue
        shown = name.replace("_", " ") if underscore and len(name) > 3 else name  # keep kaomoji like ^_^
        if shown not in undesired and name not in undesired:
            kept.append((category != CHARACTER, -prob, shown))
    return [shown for _, _, shown in sorted(kept)]


def caption_images(
    images: str | Path,
    *,
    method: str = "wd14",
    model: str | None = None,
    threshold: float = 0.35,
    general_threshold: float | None = None,
    character_threshold: float | None = None,
    prefix: str = "",
    overwrite: bool = False,
    caption_extension: str = ".txt",
    recursive: bool = False,
    batch_size: int = 1,
    remove_underscore: bool = False,
    undesired_tags: str = "",
    max_length: int = 75,
    device: str | None = None,
    endpoint: str | None = None,
    progress: bool = True,
) -> ToolResult:
    """Caption the images of `images` (see the module docstring); returns the summary."""
    from PIL import Image, UnidentifiedImageError

    from trainer.tools.captioners import (
        DEFAULT_MODELS,
        TRANSFORMERS_FILES,
        WD14_FILES,
        TextCaptioner,
        Wd14Tagger,
        model_folder,
    )

    folder, pictures = _check(
        images,
        method,
        [threshold, general_threshold, character_threshold],
        caption_extension,
        batch_size,
        max_length,
        recursive,
    )
    todo = [p for p in pictures if overwrite or not p.with_suffix(caption_extension).exists()]

    lines: list[str] = []
    skipped: list[str] = []
    if todo:
        name = model or DEFAULT_MODELS[method]
        source = model_folder(name, list(WD14_FILES if method == "wd14" else TRANSFORMERS_FILES), endpoint)
        captioner: Any = (
            Wd14Tagger(source, device)
            if method == "wd14"
            else TextCaptioner(method, source, device, max_length)
        )
        undesired = {t.strip() for t in undesired_tags.split(",") if t.strip()}
        general = general_threshold or threshold
        character = character_threshold or threshold
        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        for batch in each(batches, "caption", show=progress):
            opened, kept = [], []
            for path in batch:
                try:
                    with Image.open(path) as im:
                        im.load()
                        opened.append(im.copy())
                    kept.append(path)
                except (OSError, UnidentifiedImageError) as err:
                    skipped.append(f"{path.name} ({err})")
            if not opened:
                continue
            results = captioner(opened)
            for path, found in zip(kept, results, strict=True):
                text = (
                    ", ".join(wd14_caption(found, general, character, undesired, remove_underscore))
                    if method == "wd14"
                    else found
                )
                write_file_atomic(path.with_suffix(caption_extension), (prefix + text).encode("utf-8"))

    done = len(todo) - len(skipped)
    kept_old = len(pictures) - len(todo)
    lines.append(
        f"captioned {done} of {len(pictures)} images in {folder} ({method}); kept {kept_old} existing"
    )
    if skipped:
        lines.append(f"skipped {len(skipped)} unreadable image(s): {', '.join(skipped[:5])}")
    frequency = tag_frequency(pictures, caption_extension)
    if frequency:
        lines.append("tags: " + ", ".join(f"{tag} ({n})" for tag, n in frequency.most_common(30)))
    return ToolResult(
        None, lines, {"captioned": done, "images": len(pictures), "tag_frequency": dict(frequency)}
    )


def _check(
    images: str | Path, method: str, thresholds: list[float | None], caption_extension: str,
    batch_size: int, max_length: int, recursive: bool,
) -> tuple[Path, list[Path]]:  # fmt: skip
    """Every option checked before a model loads: (the folder, its images)."""
    folder = Path(str(images or "").strip()).expanduser()
    if not str(images or "").strip() or not folder.is_dir():
        raise ToolError(f"--images {folder} is not a folder; give the folder that holds the images.")
    if method not in METHODS:
        raise ToolError(f"--method {method!r} is not one of {', '.join(METHODS)}.")
    names = ("--threshold", "--general_threshold", "--character_threshold")
    for option, value in zip(names, thresholds, strict=True):
        if value is not None and not 0 < value <= 1:
            raise ToolError(f"{option} {value} must be in (0, 1], e.g. 0.35.")
    if not caption_extension.startswith(".") or len(caption_extension) < 2:
        raise ToolError(f"--caption_extension {caption_extension!r} must start with a dot, e.g. .txt.")
    if batch_size < 1 or max_length < 1:
        raise ToolError("--batch_size and --max_length must be 1 or more.")
    pictures = find_images(folder, recursive)
    if not pictures:
        raise ToolError(f"--images {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return folder, pictures


def tag_frequency(pictures: list[Path], caption_extension: str) -> Counter[str]:
    """How many captions hold each comma-separated tag (first line of each caption)."""
    counts: Counter[str] = Counter()
    for path in pictures:
        caption = path.with_suffix(caption_extension)
        if caption.is_file():
            first = (caption.read_text(encoding="utf-8", errors="replace").splitlines() or [""])[0]
            counts.update({t.strip() for t in first.split(",") if t.strip()})
    return counts
