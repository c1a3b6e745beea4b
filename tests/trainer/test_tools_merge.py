"""merge: concatenated ranks give exactly the weighted sum of the inputs' changes (and
diffusers sees the same as both LoRAs applied), SVD to a new rank gives the best
approximation, and a LoRA baked into a checkpoint changes the base by exactly its delta."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tests.trainer.tools_helpers import make_lora, module_deltas, pipeline, unet_out
from trainer.models import load_models
from trainer.network import find_targets
from trainer.tools.bake import bake_loras
from trainer.tools.lora_io import ToolError
from trainer.tools.merge import merge_loras
from trainer.tools.verify import inspect_lora


@pytest.fixture(scope="module")
def two(models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("two")
    a = make_lora(models, folder / "a.safetensors", rank=8, alpha=4, conv_rank=4, seed=1)
    b = make_lora(models, folder / "b.safetensors", rank=4, alpha=1, seed=2, std=0.2)
    return a, b


def test_concat_is_the_weighted_sum_of_both(two, tmp_path):
    a, b = two
    result = merge_loras(
        [a, b], tmp_path / "ab.safetensors", ratios=[1.0, -0.5], concat=True, save_precision="float"
    )
    da, db, merged = module_deltas(a), module_deltas(b), module_deltas(result.path)
    assert merged.keys() == da.keys() | db.keys()
    for name, delta in merged.items():
        expected = da[name] - 0.5 * db.get(name, torch.zeros_like(delta))
        torch.testing.assert_close(delta, expected, atol=1e-5, rtol=1e-4, msg=name)
    with safe_open(str(result.path), "pt") as f:
        meta = f.metadata()
    assert meta["ss_network_dim"] == "Dynamic" and meta["ss_merged_from"] == "a.safetensors, b.safetensors"


def test_concat_in_diffusers_equals_both_loras_applied(two, tiny_model, tmp_path):
    a, b = two
    merged = merge_loras([a, b], tmp_path / "ab.safetensors", ratios=[0.8, 0.5], save_precision="float").path
    pipe = pipeline(tiny_model("sd15"), "sd1")
    pipe.load_lora_weights(str(a), adapter_name="a")
    pipe.load_lora_weights(str(b), adapter_name="b")
    pipe.set_adapters(["a", "b"], adapter_weights=[0.8, 0.5])
    both = unet_out(pipe)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(merged))
    for x, y in zip(both, unet_out(pipe), strict=True):
        torch.testing.assert_close(y, x, atol=1e-4, rtol=1e-4)


def test_svd_merge_is_the_best_approximation_of_the_sum(two, tmp_path):
    a, b = two
    result = merge_loras([a, b], tmp_path / "r4.safetensors", new_rank=4, save_precision="float")
    da, db, merged = module_deltas(a), module_deltas(b), module_deltas(result.path)
    for name, delta in merged.items():
        total = (da[name] + db.get(name, 0)).reshape(delta.shape[0], -1).double().numpy()
        u, s, vh = np.linalg.svd(total, full_matrices=False)
        best = (u[:, :4] * s[:4]) @ vh[:4]
        assert np.abs(delta.reshape(total.shape).double().numpy() - best).max() <= 1e-4 * max(
            1, np.abs(best).max()
        )
    with safe_open(str(result.path), "pt") as f:
        assert f.metadata()["ss_network_dim"] == "4"


@pytest.mark.parametrize("arch", ["sd15", "sd2v", "sdxl"])
def test_baked_checkpoint_differs_from_the_base_by_the_delta(tiny_single_file, tmp_path, arch):
    base_file = tiny_single_file(arch)
    base = load_models(str(base_file))
    lora = make_lora(base, tmp_path / "l.safetensors", rank=4, alpha=2, conv_rank=2, seed=3)
    out = bake_loras(
        [str(lora)], str(base_file), tmp_path / "baked.safetensors", ratios=[0.7], save_precision="float"
    )
    baked = load_models(str(out.path))
    deltas = module_deltas(lora)
    for (name, before), (_, after) in zip(*(_layers(m) for m in (base, baked)), strict=True):
        expected = before.weight + 0.7 * deltas[name] if name in deltas else before.weight
        torch.testing.assert_close(after.weight, expected, atol=1e-6, rtol=1e-6, msg=name)
    assert len(deltas) > 0 and all(name in dict(_layers(base)) for name in deltas)
    tiny = "unknown (text encoder width [32])"  # SD1 / SD2 are told apart by their real widths
    assert inspect_lora(lora)["architecture"] == ("SDXL" if arch == "sdxl" else tiny)  # no metadata here
    vae_before, vae_after = base.vae.state_dict(), baked.vae.state_dict()
    assert all(torch.equal(vae_before[k], vae_after[k]) for k in vae_before)


def _layers(models):
    unet, te = find_targets(models.unet, models.text_encoders, arch=models.arch, conv=True)
    return unet + te


def test_merge_refuses_mismatched_ratios_and_other_models(two, tmp_path, tiny_model):
    a, b = two
    with pytest.raises(ToolError, match="--ratios"):
        merge_loras([a, b], tmp_path / "x.safetensors", ratios=[1.0])
    with pytest.raises(ToolError, match="--concat and --new_rank"):
        merge_loras([a, b], tmp_path / "x.safetensors", concat=True, new_rank=4)
    with pytest.raises(ToolError, match="another model family"):
        bake_loras([str(a)], str(tiny_model("sdxl")), tmp_path / "x.safetensors", progress=False)
    assert not (tmp_path / "x.safetensors").exists()


def test_full_size_sd15_names_are_kept(tmp_path):
    from tests.trainer.tools_helpers import full_size_sd15_lora, keys_of

    src = full_size_sd15_lora(tmp_path / "full.safetensors")
    for kwargs in ({"concat": True}, {"new_rank": 1}):
        out = merge_loras([src, src], tmp_path / "m.safetensors", ratios=[0.5, 0.5], progress=False, **kwargs)
        assert keys_of(out.path) == keys_of(src) and out.facts["modules"] == 264
