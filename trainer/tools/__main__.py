"""`python -m trainer.tools resize|merge|extract|verify|caption ...` (sd-scripts' option names).

    resize  --model IN --new_rank R --save_to OUT [--new_conv_rank C] [--save_precision fp16|bf16|float]
            [--dynamic_method sv_ratio|sv_fro|sv_cumulative --dynamic_param P] [--device cpu|cuda] [--verbose]
    merge   --models A B ... [--ratios 1.0 0.5 ...] --save_to OUT [--concat | --new_rank R]
            [--new_conv_rank C] [--base_model M --save_to_checkpoint] [--save_precision ...]
    extract --model_org BASE --model_tuned TUNED --dim R [--conv_dim C] --save_to OUT [--clamp_quantile 0.99]
    verify  FILE [--json]
    caption --images DIR --method wd14|florence2|blip [--model ID] [--threshold 0.35] [--prefix "x, "]
            [--overwrite]

Exit codes: 0 done, 2 a bad option or input (a message says which and what to do), 1 a
failure while working.
"""

from __future__ import annotations

import argparse
import json
import sys

from trainer.tools.lora_io import ToolError

PRECISION = ("fp16", "bf16", "float")


def _common(p: argparse.ArgumentParser, precision_default: str | None = None) -> None:
    p.add_argument(
        "--save_precision", choices=PRECISION, default=precision_default, help="precision of the file"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (the SVDs run there)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer.tools", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("resize", help="a LoRA at a lower (or dynamic) rank")
    p.add_argument("--model", required=True, help="the LoRA .safetensors to resize")
    p.add_argument(
        "--new_rank", type=int, required=True, help="rank to keep (the most, with a dynamic method)"
    )
    p.add_argument(
        "--new_conv_rank", type=int, default=None, help="rank of 3x3 conv modules (default: --new_rank)"
    )
    p.add_argument("--save_to", required=True, help="the .safetensors to write")
    p.add_argument("--dynamic_method", choices=("sv_ratio", "sv_fro", "sv_cumulative"), default=None)
    p.add_argument(
        "--dynamic_param", type=float, default=None, help="the method's target (e.g. 0.9; 2 for sv_ratio)"
    )
    p.add_argument("--verbose", action="store_true", help="print each module's kept rank and retention")
    _common(p)

    p = sub.add_parser("merge", help="LoRAs into one LoRA, or baked into a base model")
    p.add_argument("--models", nargs="+", required=True, help="LoRA .safetensors files")
    p.add_argument("--ratios", nargs="+", type=float, default=None, help="one weight per model (default 1.0)")
    p.add_argument("--save_to", required=True, help="the .safetensors to write")
    p.add_argument(
        "--concat", action="store_true", help="keep every rank (exact; the default without --new_rank)"
    )
    p.add_argument("--new_rank", type=int, default=None, help="SVD the merged change to this rank")
    p.add_argument("--new_conv_rank", type=int, default=None, help="rank of 3x3 conv modules with --new_rank")
    p.add_argument("--base_model", "--sd_model", dest="base_model", default=None, help="bake into this model")
    p.add_argument(
        "--save_to_checkpoint", action="store_true", help="save a single-file checkpoint (needs --base_model)"
    )
    p.add_argument("--v2", action="store_true", help="the base model is SD 2.x (checked)")
    p.add_argument("--sdxl", action="store_true", help="the base model is SDXL (checked)")
    p.add_argument("--v_parameterization", action="store_true")
    _common(p)

    p = sub.add_parser("extract", help="the LoRA of a fine-tuned model's difference from its base")
    p.add_argument("--model_org", required=True, help="the base model (folder, file or Hugging Face id)")
    p.add_argument("--model_tuned", required=True, help="the fine-tuned model")
    p.add_argument("--dim", type=int, default=4, help="rank of the LoRA (default 4)")
    p.add_argument("--conv_dim", type=int, default=None, help="also 3x3 convs (LoCon) at this rank")
    p.add_argument("--save_to", required=True, help="the .safetensors to write")
    p.add_argument(
        "--load_precision", choices=PRECISION, default="float", help="precision the models load in"
    )
    p.add_argument(
        "--clamp_quantile", type=float, default=0.99, help="clip factors at this quantile (1: none)"
    )
    p.add_argument(
        "--min_diff", type=float, default=0.01, help="a text encoder that differs less is left out"
    )
    p.add_argument("--v2", action="store_true")
    p.add_argument("--sdxl", action="store_true")
    p.add_argument("--v_parameterization", action="store_true")
    p.add_argument("--no_metadata", action="store_true", help="write no ss_* metadata")
    _common(p, "fp16")

    p = sub.add_parser("verify", help="what a LoRA file holds")
    p.add_argument("file", help="a LoRA .safetensors file")
    p.add_argument("--json", action="store_true", help="one JSON object (modules, metadata, ...)")

    p = sub.add_parser("caption", help="write .txt captions beside the images of a folder")
    p.add_argument("train_data_dir", nargs="?", default=None, help="the image folder (or --images)")
    p.add_argument("--images", default=None, help="the image folder")
    p.add_argument("--method", choices=("wd14", "florence2", "blip"), default="wd14")
    p.add_argument("--model", "--repo_id", dest="model", default=None, help="Hugging Face id or local folder")
    p.add_argument(
        "--threshold", "--thresh", dest="threshold", type=float, default=0.35, help="wd14 tag threshold"
    )
    p.add_argument("--general_threshold", type=float, default=None, help="wd14: for general tags")
    p.add_argument("--character_threshold", type=float, default=None, help="wd14: for character tags")
    p.add_argument("--prefix", default="", help='text put before every caption, e.g. "mychar, "')
    p.add_argument("--overwrite", action="store_true", help="replace existing captions")
    p.add_argument("--caption_extension", default=".txt")
    p.add_argument("--recursive", action="store_true", help="also the images in sub-folders")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--remove_underscore", action="store_true", help="wd14: 'long_hair' -> 'long hair'")
    p.add_argument("--undesired_tags", default="", help="wd14: comma-separated tags never written")
    p.add_argument("--max_length", type=int, default=75, help="blip / florence2: longest caption in tokens")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    return parser


def run(args: argparse.Namespace) -> object:
    """The command's ToolResult (or, for verify --json, the dict)."""
    if args.command == "resize":
        from trainer.tools.resize import resize_lora

        return resize_lora(
            args.model, args.new_rank, args.save_to, save_precision=args.save_precision,
            new_conv_rank=args.new_conv_rank, dynamic_method=args.dynamic_method,
            dynamic_param=args.dynamic_param, device=args.device, verbose=args.verbose,
        )  # fmt: skip
    if args.command == "merge":
        return _merge(args)
    if args.command == "extract":
        from trainer.tools.extract import extract_lora

        return extract_lora(
            args.model_org, args.model_tuned, args.save_to, dim=args.dim, conv_dim=args.conv_dim,
            save_precision=args.save_precision, load_precision=args.load_precision, device=args.device,
            clamp_quantile=args.clamp_quantile, min_diff=args.min_diff, v2=args.v2, sdxl=args.sdxl,
            v_parameterization=args.v_parameterization, no_metadata=args.no_metadata,
        )  # fmt: skip
    if args.command == "verify":
        from trainer.tools.verify import inspect_lora, verify_lora

        return inspect_lora(args.file) if args.json else verify_lora(args.file)
    from trainer.tools.caption import caption_images

    return caption_images(
        args.images or args.train_data_dir, method=args.method, model=args.model, threshold=args.threshold,
        general_threshold=args.general_threshold, character_threshold=args.character_threshold,
        prefix=args.prefix, overwrite=args.overwrite, caption_extension=args.caption_extension,
        recursive=args.recursive, batch_size=args.batch_size, remove_underscore=args.remove_underscore,
        undesired_tags=args.undesired_tags, max_length=args.max_length, device=args.device,
    )  # fmt: skip


def _merge(args: argparse.Namespace) -> object:
    if args.save_to_checkpoint and not args.base_model:
        raise ToolError("--save_to_checkpoint needs --base_model, the model to bake the LoRAs into.")
    if args.base_model:
        from trainer.tools.bake import bake_loras

        if args.concat or args.new_rank:
            raise ToolError("--concat / --new_rank make a LoRA; with --base_model the LoRAs are baked in.")
        return bake_loras(
            args.models, args.base_model, args.save_to, ratios=args.ratios,
            save_precision=args.save_precision or "fp16", v2=args.v2, sdxl=args.sdxl,
            v_parameterization=args.v_parameterization,
        )  # fmt: skip
    from trainer.tools.merge import merge_loras

    return merge_loras(
        args.models, args.save_to, ratios=args.ratios, concat=args.concat, new_rank=args.new_rank,
        new_conv_rank=args.new_conv_rank, save_precision=args.save_precision, device=args.device,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result = run(args)
    except ToolError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as err:
        print(f"error: {args.command} failed: {err}", file=sys.stderr)
        return 1
    if isinstance(result, dict):
        print(json.dumps(result, indent=1, default=str))
    else:
        print(result.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
