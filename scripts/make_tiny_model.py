"""Write a tiny random-weight Stable Diffusion model (for tests, the demo, offline use).

    python scripts/make_tiny_model.py --arch sd15 --format diffusers --out models/tiny-sd15
    python scripts/make_tiny_model.py --arch sdxl --format single-file --out models/tiny-sdxl.safetensors

The model is shaped like the real one of its architecture (sd15, sd2v = SD 2.x 768-v,
sdxl) and has the real CLIP tokenizer, but only a few million random weights, so it
builds in seconds on a CPU. The same seed gives the same weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the `trainer` package importable
    sys.path.insert(0, str(ROOT))

ARCHS = ("sd15", "sd2v", "sdxl")
FORMATS = ("diffusers", "single-file")


def __getattr__(name: str) -> Any:
    """`build_tiny_pipeline` / `write_tiny_model` live in trainer.models.tiny (imports torch)."""
    if name in ("build_tiny_pipeline", "write_tiny_model"):
        from trainer.models import tiny

        return getattr(tiny, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--arch", choices=ARCHS, required=True, help="model architecture")
    parser.add_argument("--format", choices=FORMATS, default="diffusers", help="output layout")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder to write (diffusers); the .safetensors file, or a folder to put it in (single-file)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    if args.format == "single-file":
        if out.exists() and not (out.is_dir() or (out.is_file() and out.suffix == ".safetensors")):
            print(
                f"{out} exists and is not a folder or a .safetensors file; choose another --out",
                file=sys.stderr,
            )
            return 2
    elif out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / "model_index.json").exists())
    ):
        print(f"{out} exists and is not an (empty or model) folder; choose another --out", file=sys.stderr)
        return 2
    from trainer.models.tiny import write_tiny_model

    written = write_tiny_model(args.arch, args.format, out, seed=args.seed)
    print(f"wrote tiny {args.arch} model to {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
