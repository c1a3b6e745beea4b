"""extract: from a base model and the same model plus a known low-rank change, the LoRA
recovers that change (diffusers folders and single files, SD1.x and SDXL), and the file
loads in diffusers with the tuned model's effect."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from tests.trainer.tools_helpers import module_deltas, pipeline, unet_out
from trainer.models.single_file import to_original_layout
from trainer.network import find_targets
from trainer.tools.extract import extract_lora
from trainer.tools.lora_io import ToolError

ARCH = {"sd15": "sd1", "sd2v": "sd2", "sdxl": "sdxl"}


def _tuned(folder, arch: str, out, single_file: bool, rank: int = 2):
    """The tiny model plus a known rank-`rank` change on every LoRA target; the changes."""
    pipe = pipeline(folder, ARCH[arch])
    encoders = [e for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if e is not None]
    unet_found, te_found = find_targets(pipe.unet, encoders, arch=ARCH[arch], conv=True)
    gen = torch.Generator().manual_seed(5)
    changes = {}
    with torch.no_grad():
        for name, layer in unet_found + te_found:
            out_dim, n = layer.weight.shape[0], layer.weight[0].numel()
            delta = (torch.randn(out_dim, rank, generator=gen) @ torch.randn(rank, n, generator=gen)) * 0.05
            layer.weight += delta.reshape(layer.weight.shape)
            changes[name] = delta.reshape(layer.weight.shape)
    if not single_file:
        pipe.save_pretrained(out)
        return out, changes
    from safetensors.torch import save_file

    parts = {"unet": pipe.unet, "vae": pipe.vae, "text_encoder": pipe.text_encoder}
    if arch == "sdxl":
        parts["text_encoder_2"] = pipe.text_encoder_2
    save_file(to_original_layout(parts, ARCH[arch]), str(out))
    return out, changes


@pytest.mark.parametrize(
    ("arch", "single_file"),
    [("sd15", False), ("sd15", True), ("sd2v", False), ("sd2v", True), ("sdxl", False), ("sdxl", True)],
)
def test_extract_recovers_a_known_low_rank_change(tiny_model, tiny_single_file, tmp_path, arch, single_file):
    base = tiny_single_file(arch) if single_file else tiny_model(arch)
    if single_file:  # the base file is fp16, the tuned one fp32: their difference is rounded
        tuned, changes = _tuned(tiny_model(arch), arch, tmp_path / "tuned.safetensors", True)
    else:
        tuned, changes = _tuned(base, arch, tmp_path / "tuned", False)
    result = extract_lora(
        str(base), str(tuned), tmp_path / "x.safetensors", dim=4, conv_dim=4, clamp_quantile=1.0,
        save_precision="float", progress=False, v_parameterization=arch == "sd2v",  # a file does not say v
    )  # fmt: skip
    got = module_deltas(result.path)
    assert got.keys() == changes.keys()
    for name, change in changes.items():
        tol = 2e-3 if single_file else 1e-4
        torch.testing.assert_close(
            got[name], change, atol=tol * max(1.0, float(change.abs().max())), rtol=0, msg=name
        )
    assert result.facts["mean_retention"] > 0.99
    with safe_open(str(result.path), "pt") as f:
        meta = f.metadata()
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "4.0")
    assert (
        meta["ss_base_model_version"] == {"sd15": "sd_v1", "sd2v": "sd_v2_v", "sdxl": "sdxl_base_v1-0"}[arch]
    )


def test_extracted_lora_in_diffusers_acts_like_the_tuned_model(tiny_model, tmp_path):
    tuned, _ = _tuned(tiny_model("sd15"), "sd15", tmp_path / "tuned", False)
    lora = extract_lora(  # fp16, the default; no clipping (sd-scripts' default 0.99 clips 1% of values)
        str(tiny_model("sd15")), str(tuned), tmp_path / "x.safetensors", dim=4, conv_dim=4, clamp_quantile=1.0
    ).path
    want = unet_out(pipeline(tuned, "sd1"))
    pipe = pipeline(tiny_model("sd15"), "sd1")
    pipe.load_lora_weights(str(lora))
    for w, g in zip(want, unet_out(pipe), strict=True):
        torch.testing.assert_close(g, w, atol=1e-2 * float(w.abs().max()), rtol=0)


def test_untouched_text_encoder_is_left_out_and_bad_options_named(tiny_model, tmp_path):
    folder = tiny_model("sd15")
    result = extract_lora(str(folder), str(folder), tmp_path / "same.safetensors", dim=2, progress=False)
    assert any("U-Net only" in line for line in result.lines)
    assert not any(k.startswith("lora_te") for k in module_deltas(result.path))
    with pytest.raises(ToolError, match="--model_tuned"):
        extract_lora(str(folder), str(tmp_path / "nope"), tmp_path / "y.safetensors")
    with pytest.raises(ToolError, match="--dim"):
        extract_lora(str(folder), str(folder), tmp_path / "y.safetensors", dim=0)
    assert not (tmp_path / "y.safetensors").exists()
