"""Reading training images with PIL (no torch).

Users' folders hold whatever their browser or phone saved: EXIF-rotated JPEGs,
transparent PNGs, CMYK or 16-bit files, animated WebPs, and the odd broken download.
`probe` reads only the header (the folder scan must stay fast for thousands of images)
and `load_rgb` turns any of them into the plain 8-bit RGB picture the user sees in an
image viewer. Broken files raise ImageError with a reason a person can act on.
"""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from trainer.data.buckets import BucketChoice, crop_offsets

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
WHITE = (255, 255, 255)

_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that shows the picture upright.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What PIL raises on damaged files, beyond its own UnidentifiedImageError (an OSError).
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    KeyError,
    IndexError,
    TypeError,
    ZeroDivisionError,
    struct.error,
)
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


class ImageError(Exception):
    """A file that cannot be used as a training image; str(err) is the reason."""


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8) found in the file header, 1 when there is none.

    Only header data is used, so the scan and the loader agree without decoding pixels.
    """
    data = img.info.get("exif")
    if not data:
        return 1
    try:
        exif = Image.Exif()
        exif.load(data)
        value = int(exif.get(_ORIENTATION_TAG, 1))
    except _DECODE_ERRORS:  # a damaged EXIF block must not cost the user the image
        return 1
    return value if value in _TRANSPOSE else 1


def _tail(path: Path, n: int = 64) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - n))
        return f.read()


def _check_complete(path: Path, img: Image.Image) -> None:
    """Catch truncated files cheaply: look for the end marker, and only when it is
    missing pay for a full check (so good files cost one small read)."""
    if img.format == "PNG" and _PNG_END not in _tail(path):
        try:
            with Image.open(path) as again:
                again.verify()  # walks the chunks and their CRCs without decoding
        except _DECODE_ERRORS as err:
            raise ImageError(f"truncated or damaged PNG ({err})") from None
    elif img.format == "JPEG" and _JPEG_END not in _tail(path).rstrip(b"\x00"):
        try:
            with Image.open(path) as again:
                again.draft("RGB", (max(1, again.width // 8), max(1, again.height // 8)))
                again.load()
        except _DECODE_ERRORS as err:
            raise ImageError(f"truncated or damaged JPEG ({err})") from None
    elif img.format == "WEBP":
        with open(path, "rb") as f:
            head = f.read(8)
        declared = int.from_bytes(head[4:8], "little") + 8
        if head[:4] == b"RIFF" and declared > path.stat().st_size:
            raise ImageError(f"truncated WebP ({path.stat().st_size} of {declared} bytes)")


def _open(path: Path) -> Image.Image:
    """Image.open with the failure turned into a reason a person understands."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ImageError(f"cannot read the file ({err.strerror or err})") from None
    if size == 0:
        raise ImageError("empty file (0 bytes)")
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise ImageError("not an image (the content is not PNG/JPEG/WebP/BMP data)") from None
    except Image.DecompressionBombError as err:
        raise ImageError(f"image is too large to load safely ({err})") from None
    except OSError as err:
        raise ImageError(f"cannot read the file ({err})") from None


def probe(path: str | Path) -> tuple[int, int]:
    """(width, height) as displayed (EXIF rotation applied), from the header only.

    Raises ImageError for empty, non-image, truncated or unreadable files.
    """
    width, height, _animated = probe_image(path)
    return width, height


def probe_image(path: str | Path) -> tuple[int, int, bool]:
    """(width, height, animated): `probe`, plus whether the file is an animation (GIF,
    APNG, WebP), of which only the first frame is trained."""
    path = Path(path)
    img = _open(path)
    try:
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageError(f"image has no pixels ({width}x{height})")
        _check_complete(path, img)
        if _orientation(img) >= 5:  # 5-8 turn the picture by 90 degrees
            width, height = height, width
        animated = bool(getattr(img, "is_animated", False))
    except ImageError:
        raise
    except _DECODE_ERRORS as err:
        raise ImageError(f"cannot read the image header ({err})") from None
    finally:
        img.close()
    return width, height, animated


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    """Scale high-bit-depth grey values into 0..255 instead of clipping them."""
    is_float = arr.dtype.kind == "f"
    arr = arr.astype(np.float64)
    top = float(arr.max()) if arr.size else 0.0
    if is_float and top <= 1.0:
        arr = arr * 255.0
    elif top > 255.0:
        arr = arr * (255.0 / max(65535.0, top))
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _flatten(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited on white (how viewers show it)."""
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;"):
        grey = Image.fromarray(_to_8bit(np.asarray(img)), mode="L")
        return grey.convert("RGB")
    if "transparency" in img.info and mode in ("P", "L", "RGB", "1"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        background = Image.new("RGB", img.size, WHITE)
        background.paste(img.convert("RGB"), mask=img.getchannel("A"))
        return background
    if mode == "RGB":
        return img
    return img.convert("RGB")


def _decode(path: str | Path, convert) -> Image.Image | None:
    """Open `path`, take its first frame and return `convert(frame)` turned upright (EXIF),
    detached from the file; None when `convert` returns None. Raises ImageError(reason)."""
    path = Path(path)
    img = _open(path)
    try:
        orientation = _orientation(img)
        img.seek(0)
        img.load()
        out = convert(img)
        if out is None:
            return None
        if orientation in _TRANSPOSE:
            out = out.transpose(_TRANSPOSE[orientation])
        if out is img:
            out = img.copy()  # detach from the file before closing it
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageError(f"image is too large to load safely ({err})") from None
    except _DECODE_ERRORS as err:
        raise ImageError(f"cannot decode the image ({err})") from None
    finally:
        img.close()
    return out


def load_rgb(path: str | Path) -> Image.Image:
    """The picture as 8-bit RGB, upright (EXIF), first frame of animations,
    transparency on white. Raises ImageError(reason) for files that cannot be used."""
    return _decode(path, _flatten)


_ALPHA_MODES = ("RGBA", "LA", "La", "PA", "RGBa")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in _ALPHA_MODES or "transparency" in img.info


def has_alpha(path: str | Path) -> bool:
    """Whether the file has transparency (an alpha channel), from its header only."""
    try:
        img = _open(Path(path))
    except ImageError:
        return False
    try:
        return _has_alpha(img)
    finally:
        img.close()


def load_alpha(path: str | Path) -> Image.Image | None:
    """The transparency of the picture as an 8-bit mask ("L", 255 = opaque), upright, first
    frame; None for a picture without transparency. Raises ImageError like load_rgb."""
    return _decode(path, lambda img: img.convert("RGBA").getchannel("A") if _has_alpha(img) else None)


def crop_like(mask: Image.Image, choice: BucketChoice, top: int, left: int) -> Image.Image:
    """Resize and crop a mask exactly as `resize_and_crop` did its picture (same box)."""
    if mask.size != choice.resized:
        mask = mask.resize(choice.resized, Image.Resampling.BILINEAR)
    if mask.size != choice.bucket:
        mask = mask.crop((left, top, left + choice.bucket[0], top + choice.bucket[1]))
    return mask


def resize_and_crop(
    img: Image.Image, choice: BucketChoice, *, random_crop: bool = False, rng: random.Random | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Resize to choice.resized, then crop to choice.bucket.

    Returns the bucket-sized image and the crop's top-left (top, left), which SDXL
    uses as size conditioning. The crop is centred unless random_crop is set.
    """
    if img.size != choice.resized:
        shrinking = choice.resized[0] * choice.resized[1] < img.width * img.height
        # reducing_gap: a fast box reduction first, then LANCZOS for the last factor 3.
        img = img.resize(choice.resized, Image.Resampling.LANCZOS, reducing_gap=3.0 if shrinking else None)
    extra_h, extra_w = crop_offsets(choice)
    if random_crop:
        rng = rng or random.Random()
        top, left = rng.randint(0, extra_h), rng.randint(0, extra_w)
    else:
        top, left = extra_h // 2, extra_w // 2
    if extra_h or extra_w:
        img = img.crop((left, top, left + choice.bucket[0], top + choice.bucket[1]))
    return img, (top, left)
