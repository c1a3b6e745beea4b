"""One entry for every Utility by name, as trainer.api and the command line call them."""

from __future__ import annotations

from typing import Any

from trainer.tools.lora_io import ToolError
from trainer.tools.outputs import ToolResult


def run_utility(name: str, options: dict[str, Any]) -> ToolResult:
    """Run utility `name` with `options` (the keyword arguments of its function)."""
    options = {k: v for k, v in options.items() if v is not None}
    if name == "verify":
        from trainer.tools.verify import verify_lora

        return verify_lora(options.pop("file", ""))
    if name == "resize":
        from trainer.tools.resize import resize_lora

        return resize_lora(
            options.pop("model", ""), options.pop("new_rank", 0), options.pop("save_to", ""), **options
        )
    if name == "merge":
        if options.get("base_model"):
            from trainer.tools.bake import bake_loras

            return bake_loras(
                options.pop("models", []), options.pop("base_model"), options.pop("save_to", ""), **options
            )
        from trainer.tools.merge import merge_loras

        options.pop("base_model", None)
        return merge_loras(options.pop("models", []), options.pop("save_to", ""), **options)
    if name == "extract":
        from trainer.tools.extract import extract_lora

        return extract_lora(
            options.pop("model_org", ""),
            options.pop("model_tuned", ""),
            options.pop("save_to", ""),
            **options,
        )
    if name == "caption":
        from trainer.tools.caption import caption_images

        return caption_images(options.pop("images", ""), **options)
    raise ToolError(f"unknown utility {name!r}")
