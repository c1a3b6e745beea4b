"""resize: the best rank-r approximation of every module, the strength kept, the file
loading in diffusers with the same effect, dynamic ranks, LoCon, and refusals that name
the option before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tests.trainer.tools_helpers import (
    full_size_sd15_lora,
    keys_of,
    make_lora,
    module_deltas,
    pipeline,
    unet_out,
)
from trainer.tools.lora_io import ToolError
from trainer.tools.resize import resize_lora
from trainer.tools.verify import inspect_lora


@pytest.fixture(scope="module")
def rank8(models, tmp_path_factory):
    return make_lora(models, tmp_path_factory.mktemp("r8") / "r8.safetensors", rank=8, alpha=4, conv_rank=4)


def test_same_rank_reproduces_every_module(rank8, tmp_path):
    out = resize_lora(rank8, 8, tmp_path / "same.safetensors", new_conv_rank=4, save_precision="fp16")
    before, after = module_deltas(rank8), module_deltas(out.path)
    assert before.keys() == after.keys()
    for name, delta in before.items():
        scale = float(delta.abs().max())
        torch.testing.assert_close(after[name], delta, atol=2e-3 * scale, rtol=2e-3, msg=name)


def test_lower_rank_is_the_best_approximation_and_keeps_the_strength(rank8, tmp_path):
    result = resize_lora(rank8, 4, tmp_path / "r4.safetensors", save_precision="float", verbose=True)
    before, after = module_deltas(rank8), module_deltas(result.path)
    retentions = []
    for name, delta in before.items():
        matrix = delta.reshape(delta.shape[0], -1).double().numpy()
        u, s, vh = np.linalg.svd(matrix, full_matrices=False)
        rank = 4  # conv modules too
        best = (u[:, :rank] * s[:rank]) @ vh[:rank]
        got = after[name].reshape(matrix.shape).double().numpy()
        assert np.abs(got - best).max() <= 1e-4 * max(1.0, np.abs(best).max()), name
        retentions.append(np.sqrt((s[:rank] ** 2).sum() / (s**2).sum()))
    assert result.facts["min_retention"] >= min(retentions) - 1e-6
    assert result.facts["mean_retention"] >= 0.95  # singular values decay like a trained LoRA's
    with safe_open(str(result.path), "pt") as f:
        meta = f.metadata()
        alpha = float(f.get_tensor("lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha"))
    assert (meta["ss_network_dim"], meta["ss_network_alpha"], alpha) == ("4", "2.0", 2.0)  # alpha/rank kept
    assert "resized from 8 to 4" in meta["ss_training_comment"]
    assert any("rank 8 -> 4, retained" in line for line in result.lines)


@pytest.mark.parametrize(("rank", "close"), [(8, 1e-4), (6, 0.1)])
def test_resized_file_loads_in_diffusers_and_acts_like_the_original(rank8, tiny_model, tmp_path, rank, close):
    resized = resize_lora(
        rank8, rank, tmp_path / "r.safetensors", new_conv_rank=4, save_precision="float"
    ).path
    base = unet_out(pipe := pipeline(tiny_model("sd15"), "sd1"))
    pipe.load_lora_weights(str(rank8))
    original = unet_out(pipe)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(str(resized))
    after = unet_out(pipe)
    for b, o, a in zip(base, original, after, strict=True):
        change = (o - b).norm()
        assert change > 1e-3  # the LoRA does something
        assert (a - o).norm() < close * change  # ... and the resized one the same (nearly, at rank 6)


def test_dynamic_rank_keeps_the_asked_fraction(rank8, tmp_path):
    result = resize_lora(rank8, 8, tmp_path / "dyn.safetensors", dynamic_method="sv_fro", dynamic_param=0.9)
    assert result.facts["min_retention"] >= 0.9
    info = inspect_lora(result.path)
    assert info["metadata"]["ss_network_dim"] == "Dynamic"
    assert max(int(r) for r in info["ranks"]) <= 8 and len(info["ranks"]) > 1


def test_full_size_sd15_names_are_kept(tmp_path):
    src = full_size_sd15_lora(tmp_path / "full.safetensors", conv=True, rank=2)
    out = resize_lora(src, 1, tmp_path / "small.safetensors", progress=False).path
    assert keys_of(out) == keys_of(src)
    info = inspect_lora(out)
    assert (info["modules"], info["modules_by_part"]["text_encoder"], info["kohya_names"]) == (350, 72, True)
    assert info["architecture"] == "SD 1.x" and info["ranks"] == {"1": 350}


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"new_rank": 0}, "--new_rank"),
        ({"save_to": "out.ckpt"}, "--save_to"),
        ({"dynamic_method": "sv_fro"}, "--dynamic_param"),
        ({"dynamic_method": "sv_fro", "dynamic_param": 3.0}, "--dynamic_param"),
        ({"save_precision": "fp8"}, "--save_precision"),
        ({"model": "missing.safetensors"}, "--model"),
    ],
)
def test_bad_options_are_named_before_any_work(rank8, tmp_path, kwargs, names):
    args = {"model": rank8, "new_rank": 4, "save_to": tmp_path / "out.safetensors", **kwargs}
    with pytest.raises(ToolError, match=names):
        resize_lora(args.pop("model"), args.pop("new_rank"), args.pop("save_to"), **args)
    assert not (tmp_path / "out.safetensors").exists()


def test_tucker_locon_modules_are_read_as_the_layers_they_change(tmp_path):
    """lora_mid (LyCORIS' Tucker LoCon): the change is what the three convs do in a row."""
    from safetensors.torch import save_file

    from trainer.tools.lora_io import LoraFile

    gen = torch.Generator().manual_seed(0)
    down, mid, up = (torch.randn(s, generator=gen) for s in ((2, 3, 1, 1), (2, 2, 3, 3), (5, 2, 1, 1)))
    name = "lora_unet_down_blocks_0_resnets_0_conv1"
    path = tmp_path / "tucker.safetensors"
    tensors = {f"{name}.lora_down.weight": down, f"{name}.lora_mid.weight": mid}
    save_file({**tensors, f"{name}.lora_up.weight": up, f"{name}.alpha": torch.tensor(1.0)}, str(path))
    module = LoraFile(path).module(name)
    x = torch.randn(1, 3, 6, 6, generator=gen)
    chain = torch.nn.functional.conv2d
    expected = chain(chain(chain(x, down), mid, padding=1), up) * 0.5  # alpha 1 / rank 2
    torch.testing.assert_close(chain(x, module.delta(), padding=1), expected, atol=1e-5, rtol=1e-5)
    resized = resize_lora(path, 2, tmp_path / "plain.safetensors", save_precision="float", progress=False)
    torch.testing.assert_close(module_deltas(resized.path)[name], module.delta(), atol=1e-5, rtol=1e-5)


def test_other_lycoris_algorithms_are_refused_by_name(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "loha.safetensors"
    save_file({"lora_unet_x.hada_w1_a": torch.ones(2, 2), "lora_unet_x.alpha": torch.tensor(1.0)}, str(path))
    with pytest.raises(ToolError, match="LoHa"):
        resize_lora(path, 1, tmp_path / "o.safetensors")


def test_resized_file_loads_with_our_own_loader(rank8, tiny_model, tmp_path):
    from trainer.network import LoRANetwork

    resized = resize_lora(rank8, 4, tmp_path / "r4.safetensors", save_precision="float", progress=False).path
    pipe = pipeline(tiny_model("sd15"), "sd1")
    net = LoRANetwork(pipe.unet, [pipe.text_encoder], arch="sd1", rank=4, alpha=1, conv_rank=4, conv_alpha=1)
    net.load_kohya_weights(resized)  # shapes and alphas from the file
    net.apply_to()
    ours = unet_out(pipe)
    net.restore()
    pipe.load_lora_weights(str(resized))
    for a, b in zip(ours, unet_out(pipe), strict=True):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-3)
