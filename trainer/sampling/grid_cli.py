"""`python -m trainer grid --model M --lora A.safetensors [B ...] --prompt "..." [--prompt ...]
--weights 0.6 0.8 1.0 --seed 1 --steps 20 --out grid.png`

A comparison grid (trainer.sampling.grid): a row for the base model, then one per LoRA
file; a column per weight x prompt; the same seed in every cell. Exit 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        w, h = (int(parts[0]), int(parts[-1]))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; write WIDTH,HEIGHT, e.g. 512,512"
        ) from None
    return w, h


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainer grid", description=__doc__.split("\n\n")[1])
    p.add_argument(
        "--model", required=True, help="the base model (file, diffusers folder or Hugging Face id)"
    )
    p.add_argument("--lora", nargs="+", required=True, type=Path, help="LoRA files, one row each")
    p.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for more)")
    p.add_argument("--negative", default="", help="the negative prompt")
    p.add_argument("--weights", nargs="+", type=float, default=[1.0], help="LoRA weights (default 1.0)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--scale", type=float, default=7.0, help="CFG scale")
    p.add_argument("--sampler", default="euler_a")
    p.add_argument("--size", type=_size, default=None, help="WIDTH,HEIGHT (default: the model's usual size)")
    p.add_argument("--out", type=Path, default=Path("grid.png"), help="the PNG to write")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _args(argv)
    from trainer.models import ModelLoadError
    from trainer.sampling.grid import GridError, GridRenderer, GridSpec, save_grid

    spec = GridSpec(
        args.model,
        list(args.lora),
        list(args.prompt),
        list(args.weights),
        args.seed,
        args.steps,
        args.size,
        args.sampler,
        args.scale,
        args.negative,
    )
    if problems := spec.problems():
        print("error: " + "\n".join(problems), file=sys.stderr)
        return 2
    try:
        renderer = GridRenderer(args.model, sampler=args.sampler)
        image = renderer.render(
            spec, lambda done, total: print(f"\rimage {done}/{total}", end="", file=sys.stderr)
        )
        print(file=sys.stderr)
        path = save_grid(image, args.out, spec)
    except (GridError, ModelLoadError, ValueError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"\nerror: cannot write {args.out} ({exc.strerror or exc})", file=sys.stderr)
        return 1
    rows, cols = 1 + len(spec.loras), len(spec.weights) * len(spec.prompts)
    print(f"Wrote {path} ({image.width}x{image.height}: {rows} rows x {cols} columns)")
    return 0
