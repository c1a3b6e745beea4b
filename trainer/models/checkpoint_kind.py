"""What a single model file is, read from its tensor names and shapes only (no torch).

A user points the trainer at whatever they downloaded: an SD1/SD2/SDXL checkpoint in the
original (LDM / SGM) layout, but also a LoRA, an inpainting or refiner model, a VAE, a
ControlNet, SD3 or FLUX, or a file whose download stopped half way. Each of those gets a
message saying what the file is and what to do, before any weight is loaded.

- `read_header(file)`: tensor names, shapes and metadata of a .safetensors file (its
  JSON header) or of a PyTorch .ckpt/.pt file (its pickle, read with stand-ins that never
  import or run anything, so reading a hostile file is safe).
- `classify(header, shown)`: "sd1", "sd2" or "sdxl", or a ModelLoadError.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.models.errors import ModelLoadError

Shape = tuple[int, ...]
UNET = "model.diffusion_model."
VAE = "first_stage_model."
SD1_TEXT = "cond_stage_model.transformer."
SD2_TEXT = "cond_stage_model.model."
SDXL_TEXT1 = "conditioner.embedders.0.transformer."
SDXL_TEXT2 = "conditioner.embedders.1.model."
SDXL_REFINER_TEXT = "conditioner.embedders.0.model."
_MAX_PICKLE_BYTES = 256_000_000
_CONVERT_HINT = (
    "If you trust where this file comes from, convert it to .safetensors once (for example "
    "with a converter script or the 'Save as safetensors' option of your WebUI's model "
    "toolkit) and give that file instead; .safetensors files hold only tensors and load safely."
)


@dataclass(frozen=True)
class FileHeader:
    """The tensors of one file: name -> shape (None where a .ckpt does not say) and metadata."""

    shapes: dict[str, Shape | None]
    metadata: dict[str, str] = field(default_factory=dict)
    container: str = "safetensors"  # "safetensors" or "pytorch"


class NeedsMoreThanWeights(ModelLoadError):
    """A pickled checkpoint refers to Python objects other than tensors."""


# ---------------------------------------------------------------------------- reading


def read_header(file: Path) -> FileHeader:
    """Names and shapes of the tensors in `file`, without reading their data."""
    with file.open("rb") as handle:
        start = handle.read(9)
    # safetensors: an 8-byte header length, then the JSON header; torch.save: a zip file,
    # or (before PyTorch 1.6) a bare pickle stream.
    looks_safetensors = start[8:9] == b"{"
    if not looks_safetensors and (start[:4] == b"PK\x03\x04" or start[:1] == b"\x80"):
        return _read_pytorch(file)
    if not looks_safetensors and file.suffix.lower() != ".safetensors":
        return _read_pytorch(file)
    return _read_safetensors(file)


def _read_safetensors(file: Path) -> FileHeader:
    """The header of a .safetensors file: 8 bytes little-endian length, then JSON."""
    size = file.stat().st_size
    try:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > min(size, 100_000_000):
                raise ValueError(f"its header claims {length} bytes")
            header = json.loads(handle.read(length).decode("utf-8"))
        if not isinstance(header, dict):
            raise TypeError("its header is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        shapes = {name: tuple(int(n) for n in entry["shape"]) for name, entry in header.items()}
        end = max((int(entry["data_offsets"][1]) for entry in header.values()), default=0)
    except (OSError, struct.error, ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError) as err:
        raise ModelLoadError(
            f"{file} is not a valid .safetensors file ({err}); the download or copy may be "
            "incomplete or the file is of another kind. Download it again."
        ) from err
    expected = 8 + length + end
    if size < expected:
        raise ModelLoadError(
            f"{file} is truncated: it has {size:,} bytes but its header describes {expected:,}. "
            "The download or copy did not finish; download it again."
        )
    return FileHeader(shapes, {str(k): str(v) for k, v in metadata.items()}, "safetensors")


class _Opaque:
    """Stands in for any allowed object of a pickle; accepts every call and state."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:  # noqa: PYI034
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Opaque:
        return _Opaque()

    def __setstate__(self, state: Any) -> None:
        pass


@dataclass
class _TensorStub:
    shape: Shape


def _rebuild_tensor(storage: Any, offset: Any, size: Any, *rest: Any) -> _TensorStub:
    return _TensorStub(tuple(int(n) for n in size))


def _first_argument(data: Any, *rest: Any) -> Any:
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    return func(*args)


# The globals torch.load(weights_only=True) accepts, besides anything in torch itself.
_PLAIN_GLOBALS = {
    "collections.OrderedDict": collections.OrderedDict,
    "collections.Counter": collections.Counter,
    "_codecs.encode": _Opaque,
    "builtins.bytearray": _Opaque,
    "builtins.set": _Opaque,
    "builtins.complex": _Opaque,
}
_TORCH_GLOBALS = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _first_argument,
    "torch._utils._rebuild_parameter_with_state": _first_argument,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
}


class _KeyReader(pickle.Unpickler):
    """Unpickles a torch checkpoint's object tree with stand-ins: nothing is imported or run."""

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full in _PLAIN_GLOBALS:
            return _PLAIN_GLOBALS[full]
        if full in _TORCH_GLOBALS:
            return _TORCH_GLOBALS[full]
        if module == "torch" or module.startswith("torch."):
            return _Opaque
        raise NeedsMoreThanWeights(full)

    def persistent_load(self, pid: Any) -> Any:
        return _Opaque()


def _read_pytorch(file: Path) -> FileHeader:
    """Tensor names and shapes of a torch.save file (zip format, or the legacy one)."""
    try:
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if not names:
                    raise ValueError("it is a zip file without data.pkl, not a PyTorch checkpoint")
                info = archive.getinfo(names[0])
                if info.file_size > _MAX_PICKLE_BYTES:
                    raise ValueError("its object tree is implausibly large")
                tree = _KeyReader(io.BytesIO(archive.read(info))).load()
        else:
            with file.open("rb") as handle:
                reader = _KeyReader(handle)
                for _ in range(3):  # legacy format: magic number, protocol, system info
                    reader.load()
                tree = reader.load()
    except NeedsMoreThanWeights as err:
        raise NeedsMoreThanWeights(needs_more_message(file, str(err))) from err
    except (
        OSError,
        ValueError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        IndexError,
        TypeError,
        AttributeError,
        KeyError,
        struct.error,
    ) as err:
        raise ModelLoadError(
            f"{file} cannot be read as a PyTorch checkpoint ({type(err).__name__}: {err}); the "
            "download may be incomplete or the file is of another kind. Download it again, "
            "or use the .safetensors version of the model."
        ) from err
    state = tree
    if isinstance(tree, dict) and isinstance(tree.get("state_dict"), dict):
        state = tree["state_dict"]
    if not isinstance(state, dict):
        raise ModelLoadError(f"{file} holds no dictionary of tensors, so it is not a model checkpoint.")
    shapes = {str(k): v.shape for k, v in state.items() if isinstance(v, _TensorStub)}
    return FileHeader(shapes, {}, "pytorch")


def needs_more_message(file: Path, what: str) -> str:
    """Why a pickled checkpoint is refused, and how to get a file that loads."""
    return (
        f"{file} is a pickled checkpoint that needs more than tensors to load (it refers to "
        f"{what}). Such files can run code when they are opened, so this trainer only opens "
        f".ckpt files with torch.load(weights_only=True). {_CONVERT_HINT}"
    )


# ---------------------------------------------------------------------------- classifying


def _has(shapes: dict, *prefixes: str) -> bool:
    return any(key.startswith(prefixes) for key in shapes)


def _contains(shapes: dict, *parts: str) -> bool:
    return any(part in key for key in shapes for part in parts)


_LORA_PARTS = (
    ".lora_down.",
    ".lora_up.",
    "lora_A.",
    "lora_B.",
    ".hada_w1_a",
    ".lokr_w1",
    ".oft_blocks",
    ".lora_mid.",
    ".diff_b",
)
_OTHER_FAMILIES = (
    (("double_blocks.", "single_blocks."), "a FLUX model"),
    (("joint_blocks.",), "a Stable Diffusion 3 / 3.5 model"),
    (("clip_txt_mapper", "channelwise."), "a Stable Cascade model"),
    (("cap_embedder.",), "a Lumina model"),
    (("pos_embed", "t_embedder.", "x_embedder."), "a DiT-type model (PixArt, Hunyuan-DiT or similar)"),
    (("motion_modules.",), "an AnimateDiff motion module"),
)


def _refuse_non_models(shapes: dict[str, Shape | None], shown: str) -> None:
    """Raise ModelLoadError when the file is not a base model at all (LoRA, embedding,
    ControlNet, another model family)."""
    if not shapes:
        raise ModelLoadError(f"{shown} holds no tensors, so it is not a model. Download it again.")
    if _has(shapes, "lora_unet_", "lora_te", "lycoris_", "lora_transformer_") or _contains(
        shapes, *_LORA_PARTS
    ):
        raise ModelLoadError(
            f"{shown} is a LoRA (or LyCORIS) file, not a base model. Choose the checkpoint it "
            "was trained on as the pretrained model; to keep training this LoRA, give it under "
            "'Network weights' instead."
        )
    if _has(shapes, "emb_params", "string_to_param", "clip_l", "clip_g") and len(shapes) <= 4:
        raise ModelLoadError(
            f"{shown} is a textual-inversion embedding, not a base model. Choose a Stable "
            "Diffusion checkpoint as the pretrained model."
        )
    if "edm_mean" in shapes or "edm_std" in shapes:
        raise _unsupported(shown, "a Playground v2.5 (EDM) model")
    if _has(shapes, "control_model.", "controlnet_") or _contains(shapes, "controlnet_cond_embedding"):
        raise ModelLoadError(
            f"{shown} is a ControlNet, not a base model. Choose a Stable Diffusion checkpoint "
            "as the pretrained model."
        )
    for parts, what in _OTHER_FAMILIES:
        if _contains(shapes, *parts):
            raise _unsupported(shown, what)


def classify(header: FileHeader, shown: str) -> str:
    """The architecture of an original-layout checkpoint ("sd1", "sd2", "sdxl").

    Raises ModelLoadError naming what the file is instead (LoRA, inpainting, refiner,
    VAE, another model family, ...) and what to give the trainer.
    """
    shapes = header.shapes
    _refuse_non_models(shapes, shown)
    if not _has(shapes, UNET):
        raise ModelLoadError(_without_unet(shapes, shown))
    in_channels = _unet_in_channels(shapes)
    if _has(shapes, SDXL_TEXT2):
        arch = "sdxl"
        if not _has(shapes, SDXL_TEXT1):
            raise ModelLoadError(
                f"{shown} is an SDXL model without its first text encoder; LoRA training needs "
                "the complete SDXL base checkpoint."
            )
    elif _has(shapes, SDXL_REFINER_TEXT):
        raise ModelLoadError(
            f"{shown} is an SDXL refiner. LoRAs are trained on the SDXL base model (or a "
            "model made from it); choose that checkpoint instead."
        )
    elif _has(shapes, SD2_TEXT):
        arch = "sd2"
    elif _has(shapes, SD1_TEXT):
        arch = "sd1"
    else:
        raise ModelLoadError(
            f"{shown} holds a U-Net but no text encoder this trainer knows, so it is not a "
            "complete SD 1.x / 2.x / XL checkpoint (or a family that is not supported yet). "
            "Use the full checkpoint, with its text encoder and VAE."
        )
    if _has(shapes, UNET + "label_emb.") and arch != "sdxl":
        raise ModelLoadError(
            f"{shown} is a Stable Diffusion {arch[-1]}.x variant with an extra image input "
            "(unCLIP or upscaler); LoRA training needs a normal text-to-image model."
        )
    if in_channels is not None and in_channels != 4:
        kind = {
            9: "an inpainting model",
            8: "an instruct-pix2pix model",
            5: "a depth model",
            7: "an upscaler",
        }.get(in_channels, "a special-purpose model")
        raise ModelLoadError(
            f"{shown} has a U-Net with {in_channels} input channels ({kind}); LoRA training "
            "needs a normal text-to-image model with 4 input channels."
        )
    return arch


def _unet_in_channels(shapes: dict[str, Shape | None]) -> int | None:
    shape = shapes.get(UNET + "input_blocks.0.0.weight")
    return int(shape[1]) if shape and len(shape) == 4 else None


def _unsupported(shown: str, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"{shown} is {what}. This trainer makes LoRAs for SD 1.x, SD 2.x and SDXL; other "
        "model families are not supported yet."
    )


def _without_unet(shapes: dict[str, Shape | None], shown: str) -> str:
    """Explain a file without an original-layout U-Net: a VAE, a diffusers part, or unknown."""
    if _has(
        shapes, "encoder.down.", "decoder.up.", "encoder.down_blocks.", "decoder.up_blocks.", VAE
    ) and not _has(shapes, "down_blocks.0.resnets.", "cond_stage_model.", "conditioner."):
        return (
            f"{shown} is a VAE, not a base model. Give it under 'VAE' and choose a Stable "
            "Diffusion checkpoint as the pretrained model."
        )
    if _has(shapes, "down_blocks.", "conv_in.", "time_embedding."):
        return (
            f"{shown} is the U-Net part of a diffusers model, not a whole model. Give the "
            "diffusers folder (with model_index.json) or a single-file checkpoint."
        )
    if _has(shapes, "text_model.", "embeddings.", "encoder.layers."):
        return f"{shown} is a text encoder only, not a whole model. Give the complete checkpoint."
    first = ", ".join(sorted(shapes)[:3])
    return (
        f"{shown} is not a Stable Diffusion 1.x / 2.x / XL checkpoint this trainer knows "
        f"(its first tensors are {first}). Other model families are not supported yet."
    )
