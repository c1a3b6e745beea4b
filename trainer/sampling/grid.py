"""A comparison grid of LoRA files: rows = the base model, then each file; columns = weight x prompt.

Every cell uses the same seed, so what differs between cells is the LoRA and its weight.
The base model loads once (trainer.models) into one diffusers pipeline
(`trainer.sampling.preview.build_pipeline`); each LoRA file is loaded beside it as a
named adapter (diffusers reads sd-scripts' key names) and switched on at its weight for
its row, so no file reloads the base model. Each cell carries a label: the file and the
weight and prompt of its column. The PNG is written atomically (trainer.files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from trainer.files import write_file_atomic_with

LABEL_HEIGHT = 26  # px of text above each cell: two lines of PIL's default font
BASE_LABEL = "base model (no LoRA)"
DEFAULT_SIZE = {"sd1": 512, "sd2": 768, "sdxl": 1024}


class GridError(Exception):
    """A grid that cannot be made as asked; the message names the file or value to fix."""


@dataclass
class GridSpec:
    """What to render: the base model, the LoRA files, prompts, weights, seed and steps."""

    model: str
    loras: list[Path]
    prompts: list[str]
    weights: list[float] = field(default_factory=lambda: [1.0])
    seed: int = 1
    steps: int = 20
    size: tuple[int, int] | None = None  # (width, height); None: the model's usual size
    sampler: str = "euler_a"
    scale: float = 7.0
    negative: str = ""

    def problems(self) -> list[str]:
        found = []
        if not self.loras:
            found.append("--lora: give at least one LoRA .safetensors file")
        found += [f"--lora: {p} does not exist" for p in self.loras if not Path(p).is_file()]
        if not self.prompts or any(not p.strip() for p in self.prompts):
            found.append("--prompt: give at least one prompt, none empty")
        if not self.weights:
            found.append("--weights: give at least one LoRA weight, e.g. 0.6 0.8 1.0")
        if not 1 <= self.steps <= 1000:
            found.append(f"--steps: {self.steps} is not allowed; use 1 to 1000")
        if self.size and any(s < 64 or s % 8 for s in self.size):
            found.append(
                f"--size: {self.size[0]},{self.size[1]}: each side must be 64 or more and a multiple of 8"
            )
        return found


def columns(spec: GridSpec) -> list[tuple[float, str]]:
    """(weight, prompt) of each column, weights outermost."""
    return [(w, p) for w in spec.weights for p in spec.prompts]


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    """`text` cut (with ...) to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def labelled(image: Image.Image, top: str, bottom: str) -> Image.Image:
    """The image with a white strip of two text lines above it."""
    cell = Image.new("RGB", (image.width, image.height + LABEL_HEIGHT), "white")
    cell.paste(image.convert("RGB"), (0, LABEL_HEIGHT))
    draw, font = ImageDraw.Draw(cell), ImageFont.load_default()
    draw.text((3, 1), _fit(draw, top, image.width - 6, font), fill="black", font=font)
    draw.text((3, 13), _fit(draw, bottom, image.width - 6, font), fill="black", font=font)
    return cell


def arrange(rows: list[list[Image.Image]]) -> Image.Image:
    """Cells of equal size into one image, row by row."""
    w, h = rows[0][0].size
    grid = Image.new("RGB", (w * len(rows[0]), h * len(rows)), "white")
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            grid.paste(cell, (c * w, r * h))
    return grid


class GridRenderer:
    """One loaded pipeline; `render(spec)` makes a grid for any LoRA files of its model."""

    def __init__(self, model: str, *, device: torch.device | None = None, sampler: str = "euler_a"):
        from trainer.models import detect_model, load_models
        from trainer.sampling.preview import build_pipeline

        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        info = detect_model(model)
        self.models = load_models(model, v2=info.arch == "sd2", sdxl=info.arch == "sdxl", dtype=dtype)
        self.pipe = build_pipeline(self.models, sampler).to(self.device)
        self.adapters: dict[str, str] = {}  # LoRA file -> adapter name

    def _adapter(self, path: Path) -> str:
        key = str(Path(path).resolve())
        if key not in self.adapters:
            name = f"lora{len(self.adapters)}"
            try:
                self.pipe.load_lora_weights(key, adapter_name=name)
            except (ValueError, KeyError, RuntimeError, OSError) as exc:
                raise GridError(f"--lora: {path} cannot be applied to this model ({exc})") from None
            self.adapters[key] = name
        return self.adapters[key]

    def _image(self, spec: GridSpec, prompt: str) -> Image.Image:
        width, height = spec.size or (DEFAULT_SIZE[self.models.arch],) * 2
        generator = torch.Generator(device=self.device).manual_seed(spec.seed)
        with torch.no_grad():
            return self.pipe(
                prompt=prompt,
                negative_prompt=spec.negative or None,
                width=width,
                height=height,
                num_inference_steps=spec.steps,
                guidance_scale=spec.scale,
                generator=generator,
            ).images[0]

    def render(self, spec: GridSpec, on_cell: Callable[[int, int], None] | None = None) -> Image.Image:
        """The grid as one image; `on_cell(done, total)` after each cell."""
        if problems := spec.problems():
            raise GridError("\n".join(problems))
        from trainer.sampling.preview import make_scheduler

        self.pipe.scheduler = make_scheduler(spec.sampler, self.models.noise_scheduler.config)
        names = [self._adapter(p) for p in spec.loras]  # all loaded before the first image
        cols = columns(spec)
        total, done = len(spec.prompts) + len(spec.loras) * len(cols), 0

        def tick() -> None:
            nonlocal done
            done += 1
            if on_cell:
                on_cell(done, total)

        self.pipe.disable_lora()
        base = {}
        for prompt in spec.prompts:  # the base row: one image per prompt, the same for every weight
            base[prompt] = self._image(spec, prompt)
            tick()
        rows = [[labelled(base[p], BASE_LABEL, f"seed {spec.seed} | {p}") for _, p in cols]]
        self.pipe.enable_lora()
        for path, name in zip(spec.loras, names, strict=True):
            row = []
            for weight, prompt in cols:
                self.pipe.set_adapters([name], adapter_weights=[weight])
                row.append(
                    labelled(self._image(spec, prompt), Path(path).name, f"weight {weight:g} | {prompt}")
                )
                tick()
            rows.append(row)
        return arrange(rows)


def save_grid(image: Image.Image, out: Path, spec: GridSpec) -> Path:
    """Write the grid PNG atomically, its settings in the PNG's text."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(
        "parameters",
        f"rows: base, {', '.join(Path(p).name for p in spec.loras)}; weights: {spec.weights}; "
        f"prompts: {spec.prompts}; seed {spec.seed}, steps {spec.steps}, sampler {spec.sampler}, "
        f"CFG scale {spec.scale}, model {spec.model}",
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_file_atomic_with(out, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))
