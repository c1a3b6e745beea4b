"""Write a small Kohya-style demo dataset: coloured shapes with tag captions.

    python scripts/make_demo_dataset.py --out datasets/demo

Two `<repeats>_<name>` folders, as the Kohya GUI expects under "Image folder":
`5_demochar` (a red circle on plain backgrounds: a "character") and `3_demostyle`
(shapes on diagonal stripes: a "style"). Eight small images of several sizes and aspect
ratios, PNG and JPG, so aspect-ratio buckets get more than one bucket and CPU training
takes seconds. Each image has a .txt caption of comma-separated tags, except one, which
trains with its folder's class token as caption (as in Kohya). The same seed gives the
same images.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 30),
    "blue": (40, 80, 220),
    "green": (40, 170, 60),
    "orange": (245, 140, 20),
    "white": (255, 255, 255),
    "light blue": (170, 210, 245),
    "yellow": (250, 235, 120),
    "grey": (150, 150, 150),
    "pale green": (190, 235, 180),
}


@dataclass(frozen=True)
class DemoImage:
    """One image of the demo dataset and the tags that describe it."""

    folder: str
    stem: str
    size: tuple[int, int]  # width, height
    shape: str  # "circle", "square", "triangle"
    colour: str
    background: str  # a COLOURS name, or "stripes"
    suffix: str  # ".png" or ".jpg"
    captioned: bool = True  # False: no caption file, the class token is the caption

    @property
    def caption(self) -> str | None:
        """Kohya-style tags: class token first, then what is in the picture."""
        if not self.captioned:
            return None
        class_token = self.folder.split("_", 1)[1]
        return f"{class_token}, {self.colour} {self.shape}, {BACKGROUND_TAGS[self.background]} background"


BACKGROUND_TAGS = {
    "white": "white",
    "light blue": "blue",
    "yellow": "yellow",
    "pale green": "green",
    "grey": "grey",
    "stripes": "striped",
}
CHAR, STYLE = "5_demochar", "3_demostyle"
DEMO_IMAGES = (
    DemoImage(CHAR, "char_01", (128, 128), "circle", "red", "white", ".png"),
    DemoImage(CHAR, "char_02", (192, 128), "circle", "red", "light blue", ".jpg"),
    DemoImage(CHAR, "char_03", (128, 192), "circle", "red", "yellow", ".png"),
    DemoImage(CHAR, "char_04", (160, 96), "circle", "red", "pale green", ".jpg"),
    DemoImage(CHAR, "char_05", (128, 128), "circle", "red", "grey", ".png", captioned=False),
    DemoImage(STYLE, "style_01", (300, 200), "square", "blue", "stripes", ".jpg"),
    DemoImage(STYLE, "style_02", (128, 128), "triangle", "green", "stripes", ".png"),
    DemoImage(STYLE, "style_03", (96, 160), "square", "orange", "stripes", ".png"),
)


def draw_image(spec: DemoImage, rng: random.Random) -> Image.Image:
    """Paint one shape on a plain or striped background; the seed only moves it a little."""
    width, height = spec.size
    image = Image.new("RGB", spec.size, COLOURS.get(spec.background, COLOURS["white"]))
    draw = ImageDraw.Draw(image)
    if spec.background == "stripes":
        for offset in range(-height, width, 16):
            draw.line([(offset, height), (offset + height, 0)], fill=(60, 60, 60), width=5)
    radius = int(min(width, height) * rng.uniform(0.28, 0.36))
    cx = width // 2 + rng.randint(-width // 10, width // 10)
    cy = height // 2 + rng.randint(-height // 10, height // 10)
    box = [cx - radius, cy - radius, cx + radius, cy + radius]
    fill = COLOURS[spec.colour]
    if spec.shape == "circle":
        draw.ellipse(box, fill=fill, outline=(0, 0, 0), width=2)
    elif spec.shape == "square":
        draw.rectangle(box, fill=fill, outline=(0, 0, 0), width=2)
    else:
        draw.polygon([(cx, cy - radius), (cx + radius, cy + radius), (cx - radius, cy + radius)], fill=fill)
    return image


def write_demo_dataset(out: Path, seed: int = 0) -> None:
    """Write the demo images and captions under `out` (created; existing files replaced)."""
    rng = random.Random(seed)
    for spec in DEMO_IMAGES:
        folder = Path(out) / spec.folder
        folder.mkdir(parents=True, exist_ok=True)
        image = draw_image(spec, rng)
        if spec.suffix == ".jpg":
            image.save(folder / f"{spec.stem}.jpg", quality=95)
        else:
            image.save(folder / f"{spec.stem}.png")
        if spec.caption is not None:
            (folder / f"{spec.stem}.txt").write_text(spec.caption + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shapes' placement")
    args = parser.parse_args(argv)
    write_demo_dataset(args.out, seed=args.seed)
    print(f"wrote {len(DEMO_IMAGES)} demo images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
