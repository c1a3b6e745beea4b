"""merge --save_to_checkpoint: LoRAs baked into a base model, saved as one checkpoint file.

The base model (any of SD1.x / SD2.x / SDXL, a diffusers folder, a single file or a
cached Hugging Face id) is loaded in float32, each LoRA module's change times its ratio
is added to the weight of the layer it names, and the model is written in the original
single-file layout (`trainer.models.single_file.to_original_layout`: LDM for SD1/SD2, SGM
for SDXL), which A1111, Forge and ComfyUI load. SD2 files hold an OpenCLIP layer and a
projection that SD never uses; they are copied from a single-file base.
"""

from __future__ import annotations

from pathlib import Path

import torch

from trainer.files import write_file_atomic_with
from trainer.tools.lora_io import ToolError
from trainer.tools.merge import module_names, open_inputs
from trainer.tools.outputs import (
    ToolResult,
    check_model_path,
    check_precision,
    check_save_to,
    each,
    load_base,
    size_text,
)


def bake_loras(
    models: list[str],
    base_model: str,
    save_to: str | Path,
    *,
    ratios: list[float] | None = None,
    save_precision: str | None = "fp16",
    v2: bool = False,
    sdxl: bool = False,
    v_parameterization: bool = False,
    progress: bool = True,
) -> ToolResult:
    """Bake `models` (weighted by `ratios`) into `base_model` and save the checkpoint `save_to`."""
    from trainer.models.single_file import to_original_layout
    from trainer.network import find_targets

    dtype = check_precision(save_precision) or torch.float16
    base = check_model_path(base_model, "--base_model")
    files, ratios = open_inputs(models, ratios)
    out_path = check_save_to(save_to, inputs=[f.path for f in files])
    flags = {"v2": v2, "sdxl": sdxl, "v_parameterization": v_parameterization}
    loaded = load_base(base, "--base_model", **flags, dtype=torch.float32)
    unet_found, te_found = find_targets(loaded.unet, loaded.text_encoders, arch=loaded.arch, conv=True)
    layers = dict(unet_found + te_found)
    names = module_names(files)
    unknown = [n for n in names if n not in layers]
    if unknown:
        raise ToolError(
            f"--models: {len(unknown)} module(s) have no layer in the {loaded.arch} base model {base} "
            f"(e.g. {unknown[0]}); the LoRA is for another model family. Choose the base model it was "
            "trained on."
        )
    with torch.no_grad():
        for name in each(names, "bake", total=len(names), show=progress):
            weight = layers[name].weight
            for lora, ratio in zip(files, ratios, strict=True):
                if name in lora.groups:
                    delta = lora.module(name).delta(ratio)
                    if delta.shape != weight.shape:
                        raise ToolError(
                            f"--models {lora.path}: module {name} changes a {tuple(delta.shape)} weight but "
                            f"the base model's is {tuple(weight.shape)}; the LoRA is for another model."
                        )
                    weight += delta.to(weight.dtype)
    components = {"unet": loaded.unet, "vae": loaded.vae, "text_encoder": loaded.text_encoders[0]}
    if loaded.arch == "sdxl":
        components["text_encoder_2"] = loaded.text_encoders[1]
    state = to_original_layout(components, loaded.arch)
    _keep_unused_sd2_weights(state, base, loaded)
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    metadata = {"format": "pt", "ss_merged_from": ", ".join(f.path.name for f in files)}

    def write(tmp: Path) -> None:
        from safetensors.torch import save_file

        save_file(state, str(tmp), metadata=metadata)

    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic_with(out_path, write)
    except OSError as err:
        raise ToolError(f"could not save {out_path}: {err.strerror or err}") from err
    lines = [
        f"baked {len(files)} LoRA(s), {len(names)} modules, into {base} ({loaded.arch})",
        f"saved {out_path} ({size_text(out_path.stat().st_size)})",
    ]
    return ToolResult(out_path, lines, {"modules": len(names), "arch": loaded.arch})


def _keep_unused_sd2_weights(state: dict, base: str, loaded) -> None:
    """Copy the SD2 file's unused OpenCLIP layer and projection instead of stand-ins."""
    from trainer.models import detect_model
    from trainer.models.ldm_layout import COMPONENT_PREFIXES
    from trainer.models.single_file import open_tensors

    if loaded.arch != "sd2":
        return
    info = detect_model(base)
    if info.format != "single-file":
        return
    prefix = COMPONENT_PREFIXES["sd2"]["text_encoder"]
    layers = loaded.text_encoders[0].config.num_hidden_layers
    blocks = prefix + "transformer.resblocks."
    extra = [
        k
        for k in state
        if k == prefix + "text_projection"
        or (k.startswith(blocks) and int(k[len(blocks) :].split(".")[0]) >= layers)
    ]
    with open_tensors(Path(info.local_path)) as tensors:
        for key in extra:
            if key in tensors.shapes:
                state[key] = tensors.get(key)
