"""Load a single-file checkpoint (original LDM / SGM layout) offline, and write one.

`load_single_file` reads the file's shapes, derives each component's config from our
shipped configs (ldm_configs), builds the diffusers / transformers models without
allocating random weights, and fills every weight from the file through the name map of
ldm_layout, one tensor at a time (so an fp16 SDXL file loaded as fp32 never holds both
copies at once). Tokenizers are rebuilt from the CLIP BPE data (tokenizer.py). Nothing is
downloaded.

`.ckpt` files are opened with `torch.load(weights_only=True)` only.

`to_original_layout` is the inverse mapping, used to write tiny single-file models shaped
like real downloads (and usable to export a diffusers model as one file).
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from trainer.models.checkpoint_kind import VAE, needs_more_message, read_header
from trainer.models.errors import ModelLoadError
from trainer.models.ldm_configs import config_name, derive_configs, shipped_config, vae_config_from_shapes
from trainer.models.ldm_layout import (
    COMPONENT_PREFIXES,
    SD2_DROPPED_LAYERS,
    TEXT_LAYOUTS,
    Source,
    text_source,
    vae_source,
)
from trainer.models.safetensors_reader import SafetensorsReader
from trainer.models.tokenizer import build_clip_tokenizer
from trainer.network.kohya_names import SgmLayout

Tensor = torch.Tensor


@dataclass
class SingleFileModels:
    """The components of one single-file checkpoint, ready for SDModels."""

    tokenizers: list[CLIPTokenizer]
    text_encoders: list[torch.nn.Module]
    unet: UNet2DConditionModel
    vae: AutoencoderKL | None  # None when the file has no VAE (a separate one must be given)


# ---------------------------------------------------------------------------- reading


class TensorFile:
    """Tensor shapes and lazy tensor reads of a .safetensors or weights-only .ckpt file.

    Names are normalised: early SD1 files store the text encoder without the `text_model.`
    level (older transformers); they are read under the name current files use.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], get: Callable[[str], Tensor]):
        self._stored = {_normalised(name): name for name in shapes}
        self.shapes = {_normalised(name): shape for name, shape in shapes.items()}
        self._get = get

    def get(self, name: str) -> Tensor:
        return self._get(self._stored[name])


def _normalised(name: str) -> str:
    old = "cond_stage_model.transformer."
    if name.startswith(old) and not name.startswith(old + "text_model."):
        return old + "text_model." + name[len(old) :]
    return name


@contextmanager
def open_tensors(path: Path) -> Iterator[TensorFile]:
    """Open a checkpoint for reading; every failure is a ModelLoadError for the user."""
    header = read_header(path)
    if header.container == "safetensors":
        with SafetensorsReader(path) as reader:
            yield TensorFile(reader.shapes, reader.get)
        return
    state = _torch_load(path)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    yield TensorFile(shapes, state.__getitem__)


def _torch_load(path: Path) -> dict[str, Tensor]:
    """A pickled checkpoint through torch.load(weights_only=True), never anything more."""
    try:
        try:
            tree = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            tree = torch.load(path, map_location="cpu", weights_only=True)  # the legacy format
    except pickle.UnpicklingError as err:
        raise ModelLoadError(needs_more_message(path, _first_line(err))) from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise ModelLoadError(
            f"{path} cannot be read as a PyTorch checkpoint ({_first_line(err)}); the download "
            "may be incomplete. Download it again, or use the .safetensors version."
        ) from err
    state = tree.get("state_dict", tree) if isinstance(tree, dict) else None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path} holds no dictionary of tensors, so it is not a model checkpoint.")
    return {str(k): v for k, v in state.items() if isinstance(v, Tensor)}


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


# ---------------------------------------------------------------------------- loading


def load_single_file(
    path: Path, arch: str, *, v_parameterization: bool, dtype: torch.dtype, shown: str
) -> SingleFileModels:
    """Build the tokenizers, text encoders, U-Net and VAE of a checkpoint file (arch from detect_model)."""
    name = config_name(arch, v_parameterization)
    prefixes = COMPONENT_PREFIXES[arch]
    with open_tensors(path) as tensors:
        parts = {
            component: {k[len(prefix) :]: s for k, s in tensors.shapes.items() if k.startswith(prefix)}
            for component, prefix in prefixes.items()
        }
        configs = derive_configs(arch, name, parts, shown)
        encoders = []
        for component, layout in TEXT_LAYOUTS[arch].items():
            cls = CLIPTextModelWithProjection if component == "text_encoder_2" else CLIPTextModel
            make = functools.partial(cls, CLIPTextConfig.from_dict(configs[component]))
            source_of = functools.partial(text_source, layout)
            encoders.append(_fill(make, tensors, prefixes[component], dtype, shown, source_of))
        unet_config = configs["unet"]
        layout = SgmLayout.from_config(unet_config)
        unet = _fill(
            lambda: UNet2DConditionModel.from_config(unet_config),
            tensors,
            prefixes["unet"],
            dtype,
            shown,
            lambda key: Source(layout.to_sgm(key)),
        )
        vae = None
        if "vae" in configs:
            vae = _build_vae(configs["vae"], tensors, prefixes["vae"], dtype, shown)
    tokenizers = [
        build_clip_tokenizer(shipped_config(name, tok)["pad_token"])
        for tok in (("tokenizer", "tokenizer_2") if arch == "sdxl" else ("tokenizer",))
    ]
    return SingleFileModels(tokenizers, encoders, unet, vae)


def load_vae_file(path: Path, arch: str, *, v_parameterization: bool, dtype: torch.dtype) -> AutoencoderKL:
    """A separate VAE file: original layout (with or without first_stage_model.) or diffusers names.

    Its latent scale is that of the model family it is used with (the file does not say).
    """
    with open_tensors(path) as tensors:
        keys = tensors.shapes
        base = shipped_config(config_name(arch, v_parameterization), "vae")
        if any(k.startswith("encoder.down_blocks.") for k in keys):  # diffusers names
            levels = len({k.split(".")[2] for k in keys if k.startswith("encoder.down_blocks.")})
            try:
                shapes = {vae_source(k, levels).name: s for k, s in keys.items()}
                config = vae_config_from_shapes(shapes, base)
            except (KeyError, IndexError, ValueError) as err:
                raise ModelLoadError(f"VAE {path} is incomplete or of an unknown kind ({err}).") from err
            return _build_vae(config, tensors, "", dtype, str(path), same_names=True)
        prefix = next((p for p in (VAE, "vae.") if any(k.startswith(p) for k in keys)), "")
        shapes = {k[len(prefix) :]: s for k, s in keys.items() if k.startswith(prefix)}
        if "encoder.conv_in.weight" not in shapes or "decoder.conv_out.weight" not in shapes:
            raise ModelLoadError(
                f"VAE {path} is not a VAE file (no encoder/decoder weights). Give a VAE "
                ".safetensors file, a diffusers VAE folder, or leave the VAE empty."
            )
        try:
            config = vae_config_from_shapes(shapes, base)
        except (KeyError, IndexError, ValueError) as err:
            raise ModelLoadError(f"VAE {path} is incomplete or of an unknown kind ({err}).") from err
        return _build_vae(config, tensors, prefix, dtype, str(path))


def _build_vae(
    config: dict, tensors: TensorFile, prefix: str, dtype: torch.dtype, shown: str, same_names: bool = False
) -> AutoencoderKL:
    levels = len(config["block_out_channels"])
    source = (lambda key: Source(key)) if same_names else (lambda key: vae_source(key, levels))
    return _fill(lambda: AutoencoderKL.from_config(config), tensors, prefix, dtype, shown, source)


def _fill(
    make: Callable[[], torch.nn.Module],
    tensors: TensorFile,
    prefix: str,
    dtype: torch.dtype,
    shown: str,
    source_of: Callable[[str], Source | None],
) -> torch.nn.Module:
    """Build a module without weights, then give it every weight from the file (strict)."""
    with init_empty_weights():
        module = make()
    state: dict[str, Tensor] = {}
    missing: list[str] = []
    for key, expected in module.state_dict().items():
        source = source_of(key)
        if source is None:
            continue
        name = prefix + source.name
        if name not in tensors.shapes:
            missing.append(name)
            continue
        tensor = _read(tensors, name, source)
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ModelLoadError(
                f"{shown}: {name} has shape {tuple(tensor.shape)} where {tuple(expected.shape)} "
                "was expected. The file is damaged or an unusual variant; use the original model."
            )
        state[key] = tensor.to(dtype=dtype if tensor.is_floating_point() else tensor.dtype).contiguous()
    if missing:
        raise ModelLoadError(
            f"{shown} is incomplete: {len(missing)} weight(s) are missing, e.g. {', '.join(missing[:3])}. "
            "Download the checkpoint again."
        )
    module.load_state_dict(state, strict=False, assign=True)
    leftovers = [n for n, p in module.named_parameters() if p.is_meta]
    if leftovers:  # only weights the mapping skips on purpose could be here
        raise ModelLoadError(f"{shown}: no weights found for {', '.join(leftovers[:3])}.")
    return module.eval()


def _read(tensors: TensorFile, name: str, source: Source) -> Tensor:
    tensor = tensors.get(name)
    if source.qkv is not None:
        width = tensor.shape[0] // 3
        tensor = tensor[source.qkv * width : (source.qkv + 1) * width]
    if source.transpose:
        tensor = tensor.T
    if source.conv1x1 and tensor.dim() == 4:
        tensor = tensor[:, :, 0, 0]
    return tensor


# ---------------------------------------------------------------------------- writing


def to_original_layout(
    components: dict[str, torch.nn.Module], arch: str, generator: torch.Generator | None = None
) -> dict[str, Tensor]:
    """The single-file state dict of diffusers components (unet, vae, text_encoder[, _2]).

    SD2 files hold one more OpenCLIP layer than the diffusers text encoder uses (SD2 reads
    the penultimate layer) and a text projection it never uses; both are filled with small
    random numbers from `generator`, so the file has the layout of a real SD2 checkpoint.
    SD1 files get the position_ids buffer real ones carry.
    """
    out: dict[str, Tensor] = {}
    for component, prefix in COMPONENT_PREFIXES[arch].items():
        module = components[component]
        source_of: Callable[[str], Source | None]
        if component == "unet":
            source_of = _sgm_source(SgmLayout.from_config(module.config))
        elif component == "vae":
            source_of = functools.partial(vae_source, num_levels=len(module.config.block_out_channels))
        else:
            source_of = functools.partial(text_source, TEXT_LAYOUTS[arch][component])
        out.update(_to_original(module.state_dict(), prefix, source_of))
    if arch == "sd1":
        out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    if arch == "sd2":
        _add_unused_sd2_weights(out, components["text_encoder"], generator)
    return out


def _sgm_source(layout: SgmLayout) -> Callable[[str], Source | None]:
    """The original (SGM) name of each diffusers U-Net weight."""

    def source_of(key: str) -> Source | None:
        return Source(layout.to_sgm(key))

    return source_of


def _to_original(
    state: dict[str, Tensor], prefix: str, source_of: Callable[[str], Source | None]
) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    fused: dict[str, dict[int, Tensor]] = {}
    for key, tensor in state.items():
        source = source_of(key)
        if source is None:
            continue
        tensor = tensor.detach() if tensor.is_meta else tensor.detach().cpu()
        if source.qkv is not None:
            fused.setdefault(source.name, {})[source.qkv] = tensor
            continue
        if source.transpose:
            tensor = tensor.T
        if source.conv1x1:
            tensor = tensor[:, :, None, None]
        out[prefix + source.name] = tensor.contiguous()
    for name, parts in fused.items():
        out[prefix + name] = torch.cat([parts[0], parts[1], parts[2]]).contiguous()
    return out


def _add_unused_sd2_weights(
    out: dict[str, Tensor], encoder: torch.nn.Module, generator: torch.Generator | None
) -> None:
    prefix = COMPONENT_PREFIXES["sd2"]["text_encoder"]
    config = encoder.config
    hidden, layers = config.hidden_size, config.num_hidden_layers
    template = f"{prefix}transformer.resblocks.0."
    for extra in range(layers, layers + SD2_DROPPED_LAYERS):
        for name in [k for k in out if k.startswith(template)]:
            new = name.replace(".resblocks.0.", f".resblocks.{extra}.")
            out[new] = _small_random(
                out[name].shape, out[name], generator, ones=name.endswith("weight") and ".ln_" in name
            )
    like = out[prefix + "token_embedding.weight"]
    out[prefix + "text_projection"] = _small_random((hidden, hidden), like, generator)


def _small_random(
    shape: tuple[int, ...] | torch.Size, like: Tensor, generator: torch.Generator | None, ones: bool = False
) -> Tensor:
    """Stand-in weights for parts a diffusers model lacks (shape only, for a model on meta)."""
    if like.is_meta:
        return torch.empty(shape, dtype=like.dtype, device="meta")
    value = torch.ones(shape) if ones else torch.randn(shape, generator=generator) * 0.02
    return value.to(like.dtype)
