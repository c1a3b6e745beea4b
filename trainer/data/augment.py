"""Colour augmentation (`color_aug`), on 8-bit RGB PIL images (no torch).

Kohya's color_aug, as users know it: about one sample in three is changed, half of
those by a small random hue shift (up to +-16 degrees, OpenCV's +-8 on its 0-180 hue
scale) and half by a gamma between 0.95 and 1.05. The change differs every time an image
is seen, so the latents of these images cannot be cached (the trainer turns the cache
off and says so).
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

APPLY_PROBABILITY = 0.33
MAX_HUE_SHIFT_DEGREES = 16.0
GAMMA_RANGE = (0.95, 1.05)


def shift_hue(img: Image.Image, degrees: float) -> Image.Image:
    """The image with its hue turned by `degrees` (greys stay grey)."""
    hsv = np.array(img.convert("RGB").convert("HSV"), dtype=np.int32)
    # PIL's hue runs 0..255 for a full turn
    hsv[..., 0] = (hsv[..., 0] + round(degrees * 256.0 / 360.0)) % 256
    return Image.fromarray(hsv.astype(np.uint8), mode="HSV").convert("RGB")


def apply_gamma(img: Image.Image, gamma: float) -> Image.Image:
    """Each channel value v in [0, 1] becomes v ** gamma (black and white stay put)."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    out = np.clip(np.rint(255.0 * arr**gamma), 0, 255).astype(np.uint8)
    return Image.fromarray(out, mode="RGB")


def color_augment(img: Image.Image, rng: random.Random) -> Image.Image:
    """Kohya-style colour augmentation: unchanged two times in three, otherwise a hue
    shift or a gamma change (each with half the chance), drawn from `rng`."""
    if rng.random() > APPLY_PROBABILITY:
        return img
    if rng.random() < 0.5:
        return shift_hue(img, rng.uniform(-MAX_HUE_SHIFT_DEGREES, MAX_HUE_SHIFT_DEGREES))
    return apply_gamma(img, rng.uniform(*GAMMA_RANGE))
