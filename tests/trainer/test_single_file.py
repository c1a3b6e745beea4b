"""Single-file checkpoints, as users download them: detection, offline loading, wrong files."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from trainer.models import ModelLoadError, detect_model, load_models
from trainer.models.tiny import build_tiny_pipeline

ARCHS = ["sd15", "sd2v", "sdxl"]
LOADER_ARCH = {"sd15": "sd1", "sd2v": "sd2", "sdxl": "sdxl"}
SUMMARY = {"sd15": "SD 1.x (single file, ", "sd2v": "SD 2.x (single file, ", "sdxl": "SDXL (single file, "}


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to reach the network (the Hugging Face Hub) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the loader tried to use the network")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _plain(state: dict) -> dict:
    """State dict keys without transformers' optional `text_model.` level."""
    return {k.removeprefix("text_model."): v for k, v in state.items()}


def _edited(source: Path, out: Path, edit) -> Path:
    state = load_file(source)
    edit(state)
    save_file(state, str(out))
    return out


# ---------------------------------------------------------------------------- detection


@pytest.mark.parametrize("arch", ARCHS)
def test_detection_of_every_tiny_model(tiny_model, tiny_single_file, arch: str) -> None:
    single = detect_model(str(tiny_single_file(arch)))
    assert (single.arch, single.format, single.v_prediction_hint) == (LOADER_ARCH[arch], "single-file", False)
    assert single.summary.startswith(SUMMARY[arch]) and single.summary.endswith(" MB)")
    assert single.v2 == (arch == "sd2v") and single.sdxl == (arch == "sdxl")
    # v-prediction cannot be read from weights: SD2 files say so and name the setting.
    assert ("v_parameterization" in single.message) == (arch == "sd2v")
    folder = detect_model(str(tiny_model(arch)))
    assert (folder.arch, folder.format) == (LOADER_ARCH[arch], "diffusers")
    assert "diffusers folder" in folder.summary
    assert ("v-prediction" in folder.summary) == (arch == "sd2v")


def test_modelspec_metadata_gives_the_v_prediction_hint(tmp_path: Path, tiny_single_file) -> None:
    state = load_file(tiny_single_file("sd2v"))
    path = tmp_path / "v.safetensors"
    save_file(state, str(path), metadata={"modelspec.prediction_type": "v"})
    info = detect_model(str(path))
    assert info.v_prediction_hint and "v-prediction" in info.summary
    assert load_models(str(path)).v_parameterization


# ---------------------------------------------------------------------------- loading


@pytest.mark.parametrize("arch", ARCHS)
def test_loader_gives_the_weights_that_were_written(tiny_single_file, offline, arch: str) -> None:
    """Our LDM/SGM -> diffusers mapping is the exact inverse of the writer, offline."""
    models = load_models(str(tiny_single_file(arch)), v_parameterization=arch == "sd2v")
    pipe = build_tiny_pipeline(arch, seed=0)
    pairs = [(pipe.unet, models.unet), (pipe.vae, models.vae), (pipe.text_encoder, models.text_encoders[0])]
    if arch == "sdxl":
        pairs.append((pipe.text_encoder_2, models.text_encoders[1]))
    for original, loaded in pairs:
        want, got = _plain(original.state_dict()), _plain(loaded.state_dict())
        assert want.keys() == got.keys(), type(original).__name__
        for key in want:  # the file is fp16, training runs in fp32
            assert torch.equal(want[key].half().float(), got[key]), key
        assert got[next(iter(got))].dtype == torch.float32
    for key in (
        "block_out_channels",
        "layers_per_block",
        "cross_attention_dim",
        "use_linear_projection",
        "down_block_types",
        "up_block_types",
        "projection_class_embeddings_input_dim",
    ):
        assert list(_tuple(models.unet.config[key])) == list(_tuple(pipe.unet.config[key])), key
    cat_ids = [49406, 320, 1125, 539, 320, 2368, 49407]  # openai/clip-vit-large-patch14
    assert all(t("a photo of a cat").input_ids == cat_ids for t in models.tokenizers)
    assert models.tokenizers[-1].pad_token == ("<|endoftext|>" if arch == "sd15" else "!")
    assert models.latent_scale == pytest.approx(0.13025 if arch == "sdxl" else 0.18215)
    assert not any(p.requires_grad for p in models.unet.parameters())


def _tuple(value):
    return value if isinstance(value, (list, tuple)) else [value]


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_written_file_is_what_diffusers_own_converter_reads(
    tiny_model, tiny_single_file, offline, arch
) -> None:
    """The writer is the inverse of diffusers' from_single_file, component by component."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    cls = StableDiffusionXLPipeline if arch == "sdxl" else StableDiffusionPipeline
    theirs = cls.from_single_file(
        str(tiny_single_file(arch)), config=str(tiny_model(arch)), local_files_only=True
    )
    ours = build_tiny_pipeline(arch, seed=0)
    # Not SDXL's text_encoder_2: diffusers tells the two encoders apart by width, and both
    # tiny ones are 32 wide (the round trip through our own loader covers it).
    for name in ("unet", "vae", "text_encoder"):
        want, got = _plain(getattr(ours, name).state_dict()), _plain(getattr(theirs, name).state_dict())
        assert want.keys() == got.keys()
        assert all(torch.equal(want[k].half().float(), got[k].float()) for k in want), name


def test_ckpt_loads_weights_only(tmp_path: Path, tiny_single_file, offline) -> None:
    # An early SD1 .ckpt: a Lightning checkpoint, text encoder without the text_model. level.
    old = "cond_stage_model.transformer."
    state = {k.replace(old + "text_model.", old): v for k, v in load_file(tiny_single_file("sd15")).items()}
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": state, "global_step": 100, "epoch": 3}, ckpt)
    info = detect_model(str(ckpt))
    assert info.arch == "sd1" and info.summary.startswith("SD 1.x (single .ckpt file, ")
    models = load_models(str(ckpt))
    pipe = build_tiny_pipeline("sd15")
    for loaded, original, key in (
        (models.unet, pipe.unet, "conv_in.weight"),
        (models.text_encoders[0], pipe.text_encoder, "final_layer_norm.weight"),
    ):
        assert torch.equal(
            _plain(loaded.state_dict())[key], _plain(original.state_dict())[key].half().float()
        )


def test_ckpt_that_needs_more_than_tensors_is_refused(tmp_path: Path, tiny_single_file) -> None:
    state = load_file(tiny_single_file("sd15"))
    ckpt = tmp_path / "old.ckpt"
    # Old training checkpoints carry their hyper-parameters as Python objects.
    torch.save({"state_dict": state, "hyper_parameters": argparse.Namespace(lr=1e-4)}, ckpt)
    for call in (detect_model, load_models):
        with pytest.raises(ModelLoadError, match=r"(?s)argparse\.Namespace.*weights_only=True.*safetensors"):
            call(str(ckpt))


def test_separate_vae_file(tmp_path: Path, tiny_model, tiny_single_file) -> None:
    want = build_tiny_pipeline("sdxl").vae.state_dict()["decoder.mid_block.attentions.0.to_q.weight"]
    # A VAE published on its own: the original layout without a prefix (fp16) ...
    prefix = "first_stage_model."
    original = {
        k[len(prefix) :]: v for k, v in load_file(tiny_single_file("sdxl")).items() if k.startswith(prefix)
    }
    save_file(original, str(tmp_path / "vae.safetensors"))
    # ... or diffusers names (fp32).
    diffusers_file = tiny_model("sdxl") / "vae" / "diffusion_pytorch_model.safetensors"
    for vae_file, expected in ((tmp_path / "vae.safetensors", want.half().float()), (diffusers_file, want)):
        models = load_models(str(tiny_single_file("sd15")), vae_path=str(vae_file))
        assert torch.equal(models.vae.state_dict()["decoder.mid_block.attentions.0.to_q.weight"], expected)
        assert models.latent_scale == pytest.approx(0.18215)  # the model family's, files do not say
    with pytest.raises(ModelLoadError, match="not a VAE file"):
        load_models(str(tiny_single_file("sd15")), vae_path=str(_lora_file(tmp_path)))


# ---------------------------------------------------------------------------- wrong files


def _lora_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_lora.safetensors"
    name = "lora_unet_down_blocks_0_attentions_0_proj_in"
    save_file(
        {
            f"{name}.lora_down.weight": torch.zeros(4, 32),
            f"{name}.lora_up.weight": torch.zeros(32, 4),
            f"{name}.alpha": torch.tensor(4.0),
        },
        str(path),
    )
    return path


def _inpainting(state: dict) -> None:
    key = "model.diffusion_model.input_blocks.0.0.weight"
    state[key] = torch.zeros(state[key].shape[0], 9, 3, 3, dtype=state[key].dtype)


def _refiner(state: dict) -> None:
    for key in list(state):
        if key.startswith("conditioner.embedders.0."):
            del state[key]
        elif key.startswith("conditioner.embedders.1."):
            state[key.replace("embedders.1.", "embedders.0.")] = state.pop(key)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("lora", r"is a LoRA .* not a base model.*Network weights"),
        ("inpainting", r"9 input channels \(an inpainting model\)"),
        ("refiner", r"is an SDXL refiner.*base model"),
        ("sd3", r"Stable Diffusion 3.*not supported yet"),
        ("flux", r"FLUX.*not supported yet"),
        ("vae", r"is a VAE, not a base model"),
        ("truncated", r"truncated: it has [\d,]+ bytes but its header describes"),
        ("empty", r"empty \(0 bytes\)"),
        ("garbage", r"not a valid \.safetensors file"),
        ("no_index", r"without model_index\.json"),
    ],
)
def test_wrong_files_get_a_clear_message(tmp_path: Path, tiny_single_file, case: str, message: str) -> None:
    sd15, sdxl = tiny_single_file("sd15"), tiny_single_file("sdxl")
    z = torch.zeros(4, 4)  # safetensors refuses to save one tensor twice: use it once per file
    path = tmp_path / f"{case}.safetensors"
    if case == "lora":
        path = _lora_file(tmp_path)
    elif case == "inpainting":
        _edited(sd15, path, _inpainting)
    elif case == "refiner":
        _edited(sdxl, path, _refiner)
    elif case == "sd3":
        save_file(
            {"model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias": torch.ones(4)},
            str(path),
        )
    elif case == "flux":
        save_file(
            {
                "double_blocks.0.img_attn.norm.key_norm.scale": torch.ones(4),
                "single_blocks.0.linear1.weight": z,
            },
            str(path),
        )
    elif case == "vae":
        names = ("encoder.conv_in.weight", "decoder.conv_out.weight", "encoder.down.0.block.0.conv1.weight")
        save_file({name: torch.zeros(4, 4) for name in names}, str(path))
    elif case == "truncated":
        path.write_bytes(sd15.read_bytes()[: sd15.stat().st_size // 2])
    elif case == "empty":
        path.touch()
    elif case == "garbage":
        path.write_bytes(b"<html>404 Not Found</html>" * 10)
    elif case == "no_index":
        path = tmp_path / "folder"
        path.mkdir()
    with pytest.raises(ModelLoadError, match=message):
        detect_model(str(path))
    # The training run stops at the same message, before any model loads.
    with pytest.raises(ModelLoadError, match=message):
        load_models(str(path))


# ---------------------------------------------------------------------------- full size


@pytest.mark.parametrize(
    ("name", "arch", "diffusers_type"),
    [("sd15", "sd1", "v1"), ("sd2v", "sd2", "v2"), ("sdxl", "sdxl", "xl_base")],
)
def test_full_size_layout_is_what_real_checkpoints_hold(name: str, arch: str, diffusers_type: str) -> None:
    """Built on the meta device from our shipped configs (no weights): the original layout
    we map to is what diffusers recognises as a real download, and reading its shapes back
    gives exactly the shipped configs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from trainer.models.checkpoint_kind import FileHeader, classify
    from trainer.models.ldm_configs import derive_configs, shipped_config
    from trainer.models.ldm_layout import COMPONENT_PREFIXES
    from trainer.models.single_file import to_original_layout

    with torch.device("meta"):
        components = {
            "unet": UNet2DConditionModel.from_config(shipped_config(name, "unet")),
            "vae": AutoencoderKL.from_config(shipped_config(name, "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_dict(shipped_config(name, "text_encoder"))),
        }
        if arch == "sdxl":
            config = CLIPTextConfig.from_dict(shipped_config(name, "text_encoder_2"))
            components["text_encoder_2"] = CLIPTextModelWithProjection(config)
    state = to_original_layout(components, arch)
    assert infer_diffusers_model_type(state) == diffusers_type
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert classify(FileHeader(shapes), "full") == arch
    known = {  # a few tensors every real download has, with their published shapes
        "sd1": {
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
            "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.bias": (768,),
            "first_stage_model.encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        },
        "sd2": {
            "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight": (3072, 1024),
            "cond_stage_model.model.text_projection": (1024, 1024),
            "model.diffusion_model.output_blocks.11.1.proj_out.weight": (320, 320),
        },
        "sdxl": {
            "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
            "conditioner.embedders.1.model.text_projection": (1280, 1280),
            "conditioner.embedders.1.model.transformer.resblocks.31.mlp.c_proj.bias": (1280,),
            "model.diffusion_model.input_blocks.8.1.transformer_blocks.9.attn1.to_q.weight": (1280, 1280),
            "model.diffusion_model.output_blocks.2.2.conv.weight": (1280, 1280, 3, 3),
        },
    }[arch]
    assert {k: shapes.get(k) for k in known} == known
    parts = {
        c: {k[len(p) :]: s for k, s in shapes.items() if k.startswith(p)}
        for c, p in COMPONENT_PREFIXES[arch].items()
    }
    derived = derive_configs(arch, name, parts, "full")
    assert all(derived[c] == shipped_config(name, c) for c in derived)


_PEAK_SCRIPT = """
import sys, torch
from pathlib import Path
from trainer.models.single_file import open_tensors

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

before = hwm()
kept = {}
with open_tensors(Path(sys.argv[1])) as tensors:
    for name in tensors.shapes:
        kept[name] = tensors.get(name).to(torch.float32)
print(hwm() - before, sum(t.numel() * 4 for t in kept.values()))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM (Linux)")
def test_loading_a_checkpoint_costs_the_weights_not_the_file_as_well(tmp_path):
    """Tensors are read one at a time (no memory map that stays resident while the file is
    open): the peak of loading is the weights built, not weights + file (a 2-4 GB
    difference on SD1.5, which made loading the peak of a whole CPU run). A float32 file
    read for a float32 model is used as read."""
    import subprocess
    import sys

    path = tmp_path / "big.safetensors"
    save_file(
        {f"w{i}": torch.full((1024, 8 * 1024), i + 0.5) for i in range(6)}, str(path)
    )  # 6 x 32 MiB fp32
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)], capture_output=True, text=True, cwd=root, check=True
    ).stdout.split()
    grown, weights = int(out[0]), int(out[1])
    assert weights == 6 * 32 * 2**20
    assert grown < weights + 48 * 2**20, (
        f"loading grew the peak by {grown / 2**20:.0f} MiB for {weights / 2**20:.0f} MiB of weights"
    )


def test_a_tensor_cut_short_names_the_file(tmp_path):
    path = tmp_path / "cut.safetensors"
    save_file({"a": torch.ones(4096)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    from trainer.models.single_file import open_tensors

    with pytest.raises(ModelLoadError, match="cut.safetensors"), open_tensors(path) as tensors:
        tensors.get("a")
