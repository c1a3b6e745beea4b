"""Caption files beside the images: read as a person saved them, never from outside the dataset.

A caption is the first line of `<image stem><caption extension>` (UTF-8, or UTF-16 with a
byte-order mark as Windows Notepad writes it). A caption file that cannot be used (another
encoding, unreadable, empty, or a symlink to a file outside the dataset folder) is named in
a warning and the image is captioned with its folder's class token: a run must not fail,
and must not train on (or write into the LoRA's ss_tag_frequency) text from elsewhere.
"""

from __future__ import annotations

import codecs
from pathlib import Path


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, its symlinks followed, lies inside `root` (an already resolved folder)."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # broken link or a link loop
        return False


def read_caption_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 (or BOM-marked UTF-16) caption file, without BOM, line endings
    or padding; the first line as it is, empty ones after it left out.

    Raises UnicodeDecodeError for files in another encoding, OSError if unreadable.
    """
    raw = path.read_bytes()
    # Windows Notepad's "Unicode" is UTF-16 with a byte-order mark: unambiguous, so read it.
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = raw.decode("utf-16")
    else:
        text = raw.decode("utf-8-sig")
    lines = [line.strip() for line in text.splitlines()] if text else [""]
    return lines[:1] + [line for line in lines[1:] if line]


def read_caption(path: Path) -> str:
    """The first line of a caption file (what is trained unless enable_wildcard is on)."""
    return read_caption_lines(path)[0]


def caption_for(
    caption_path: Path, class_token: str, root: Path, warnings: list[str]
) -> tuple[str, bool, tuple[str, ...]]:
    """(caption, has a usable caption file, all its lines) of one image; `root` is the
    resolved dataset folder the caption must stay in. Problems fall back to the class
    token, with a warning appended to `warnings`."""
    if not caption_path.is_file():
        return class_token, False, ()
    if not inside(caption_path, root):
        warnings.append(
            f"skipped the caption {caption_path}: a symlink pointing outside the dataset folder; "
            f"using the class token '{class_token}'"
        )
        return class_token, False, ()
    try:
        lines = read_caption_lines(caption_path)
    except UnicodeDecodeError:
        warnings.append(
            f"{caption_path} is not UTF-8 text; save it as UTF-8. Using the class token "
            f"'{class_token}' as its caption for now"
        )
        return class_token, True, ()
    except OSError as err:
        warnings.append(f"cannot read {caption_path} ({err}); using the class token '{class_token}'")
        return class_token, True, ()
    if not lines[0]:
        warnings.append(f"{caption_path} is empty (first line blank); using the class token '{class_token}'")
        return class_token, True, ()
    return lines[0], True, tuple(lines)
