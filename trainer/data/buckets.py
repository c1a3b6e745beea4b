"""Aspect-ratio buckets, the Kohya way (pure maths, no torch).

Images of different shapes are trained at different resolutions ("buckets") of roughly
the same area, so nothing is squashed and little is cropped. Users compare our step
counts and crops with the Kohya GUI's, so every rounding here follows docs/ANCHORS.md
section 3 to the pixel:

- normal mode: a fixed bucket list (`make_buckets`); each image goes to the bucket whose
  aspect ratio is nearest and is scaled to cover it, the overflow cropped.
- no-upscale mode: the bucket is made for the image, never larger than the image.
- buckets off: one bucket, max_resolution itself (cover, then centre crop).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

Size = tuple[int, int]  # (width, height), as Kohya writes resolutions


@dataclass(frozen=True)
class BucketChoice:
    """Where one image goes: the bucket (w, h) and the size it is resized to (w, h)
    before the overflow is cropped down to the bucket."""

    bucket: Size
    resized: Size


class BucketError(ValueError):
    """An image that no bucket can hold (e.g. thinner than one resolution step)."""


class _Sized(Protocol):
    width: int
    height: int


def make_buckets(max_reso: Size, min_size: int, max_size: int, step: int) -> list[Size]:
    """The predefined bucket list for normal mode, sorted by (w, h).

    Every bucket has about the area of max_reso and sides that are multiples of step
    between min_size and max_size; 512x512 / 256..1024 / 64 gives 17 buckets.
    """
    if step <= 0:
        raise ValueError(f"bucket_reso_steps must be >= 1, got {step}")
    if min_size > max_size:
        raise ValueError(f"min_bucket_reso ({min_size}) is larger than max_bucket_reso ({max_size})")
    area = max_reso[0] * max_reso[1]
    side = int(math.sqrt(area) // step) * step
    resos: set[Size] = {(side, side)}
    width = min_size
    while width <= max_size:
        height = min(max_size, int((area // width) // step) * step)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += step
    return sorted(resos)


def _cover(w: int, h: int, bucket: Size) -> BucketChoice:
    """Scale (w, h) so that it covers the bucket on both sides (Kohya's rounding)."""
    ar = w / h
    bucket_ar = bucket[0] / bucket[1]
    scale = bucket[1] / h if ar > bucket_ar else bucket[0] / w
    resized = (int(w * scale + 0.5), int(h * scale + 0.5))
    return BucketChoice(bucket=bucket, resized=resized)


def select_bucket(w: int, h: int, buckets: Sequence[Size]) -> BucketChoice:
    """Normal mode: the image's own size if it is a bucket, else the bucket with the
    nearest aspect ratio (the first in sorted order on a tie), scaled to cover it."""
    if not buckets:
        raise ValueError("the bucket list is empty")
    if (w, h) in buckets:
        return BucketChoice(bucket=(w, h), resized=(w, h))
    ar = w / h
    best = min(range(len(buckets)), key=lambda i: abs(buckets[i][0] / buckets[i][1] - ar))
    return _cover(w, h, buckets[best])


def _round_to_step(x: float, step: int) -> int:
    """Kohya's rounding: to the nearest integer, then down to a multiple of step."""
    n = int(x + 0.5)
    return n - n % step


def select_bucket_no_upscale(w: int, h: int, max_area: int, step: int) -> BucketChoice:
    """No-upscale mode: shrink images larger than max_area to about that area, keep
    smaller ones as they are; the bucket is the result cut down to multiples of step.

    Raises BucketError when a side would come out shorter than one step.
    """
    ar = w / h
    if w * h > max_area:
        rw = math.sqrt(max_area * ar)
        rh = max_area / rw
        bw = _round_to_step(rw, step)
        h_for_bw = _round_to_step(bw / ar, step)
        ar_by_width = bw / h_for_bw if h_for_bw > 0 else math.inf
        bh = _round_to_step(rh, step)
        ar_by_height = _round_to_step(bh * ar, step) / bh if bh > 0 else math.inf
        if abs(ar_by_width - ar) < abs(ar_by_height - ar):
            resized = (bw, int(bw / ar + 0.5))
        else:
            resized = (int(bh * ar + 0.5), bh)
    else:
        resized = (w, h)
    bucket = (resized[0] - resized[0] % step, resized[1] - resized[1] % step)
    if bucket[0] < step or bucket[1] < step:
        raise BucketError(
            f"{w}x{h} cannot be bucketed with bucket_no_upscale: a side would be cut to "
            f"{min(bucket)} px (each side needs at least {step} px after resizing)"
        )
    return BucketChoice(bucket=bucket, resized=resized)


@dataclass(frozen=True)
class BucketSpec:
    """The bucket settings of one run; `choose` places one image."""

    max_reso: Size
    enable_bucket: bool = True
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False

    def __post_init__(self) -> None:
        if self.max_reso[0] <= 0 or self.max_reso[1] <= 0:
            raise ValueError(f"max_resolution must be positive, got {self.max_reso}")
        if self.bucket_reso_steps <= 0:
            raise ValueError(f"bucket_reso_steps must be >= 1, got {self.bucket_reso_steps}")
        if self.enable_bucket and not self.bucket_no_upscale:
            # Built once here, not once per image: thousands of images share it.
            buckets = make_buckets(
                self.max_reso, self.min_bucket_reso, self.max_bucket_reso, self.bucket_reso_steps
            )
        else:
            buckets = [self.max_reso]
        object.__setattr__(self, "_buckets", tuple(buckets))

    @property
    def buckets(self) -> tuple[Size, ...]:
        """The predefined buckets (normal mode) or the single max_reso bucket."""
        return self._buckets  # type: ignore[attr-defined]

    def choose(self, w: int, h: int) -> BucketChoice:
        """The bucket for a w x h image under these settings."""
        if w <= 0 or h <= 0:
            raise BucketError(f"image size {w}x{h} is empty")
        if not self.enable_bucket:
            return _cover(w, h, self.max_reso)
        if self.bucket_no_upscale:
            area = self.max_reso[0] * self.max_reso[1]
            return select_bucket_no_upscale(w, h, area, self.bucket_reso_steps)
        return select_bucket(w, h, self.buckets)


def assign_buckets(
    items: Iterable[_Sized],
    *,
    max_reso: Size,
    enable_bucket: bool = True,
    min_bucket_reso: int = 256,
    max_bucket_reso: int = 1024,
    bucket_reso_steps: int = 64,
    bucket_no_upscale: bool = False,
) -> list[BucketChoice]:
    """One BucketChoice per item (anything with .width and .height), in order.

    Raises BucketError naming the image when one cannot be placed; use
    `BucketSpec.choose` per item to skip such images instead.
    """
    spec = BucketSpec(
        max_reso, enable_bucket, min_bucket_reso, max_bucket_reso, bucket_reso_steps, bucket_no_upscale
    )
    choices = []
    for item in items:
        try:
            choices.append(spec.choose(item.width, item.height))
        except BucketError as err:
            raise BucketError(f"{getattr(item, 'path', 'image')}: {err}") from None
    return choices


def crop_offsets(choice: BucketChoice) -> tuple[int, int]:
    """How much the resized image overflows the bucket: (extra rows, extra columns)."""
    extra_w = choice.resized[0] - choice.bucket[0]
    extra_h = choice.resized[1] - choice.bucket[1]
    if extra_w < 0 or extra_h < 0:
        raise ValueError(f"resized size {choice.resized} does not cover bucket {choice.bucket}")
    return extra_h, extra_w
