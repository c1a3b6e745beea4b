"""Find out what a model path is, without loading any weights.

The preflight plan calls this before anything heavy happens, so it imports neither torch
nor diffusers: it reads model_index.json and the component config.json files of a
diffusers folder (local, or a Hugging Face id already in the local cache), and the tensor
names and shapes of a single-file checkpoint (the JSON header of a .safetensors file, the
pickle of a .ckpt read with stand-ins; see checkpoint_kind). Every problem is a
ModelLoadError whose message says what is wrong and what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trainer.models.checkpoint_kind import classify, read_header
from trainer.models.errors import ModelLoadError
from trainer.models.hub import HUB_ID, cached_folder, missing_weights

ARCH_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "unknown": "unknown"}
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


@dataclass(frozen=True)
class ModelInfo:
    """What a model path holds.

    arch: "sd1", "sd2" or "sdxl".
    v_prediction_hint: the model itself says v_prediction (a diffusers scheduler config,
    or a single file's modelspec metadata); weights alone never tell (SD2 768-v).
    format: "diffusers" (a folder, or a cached Hugging Face id) or "single-file".
    message: one or two sentences for the user, e.g. "SDXL diffusers model /models/sdxl".
    local_path: where the weights are read from (a cached hub id resolves to its snapshot).
    summary: a short label for the GUI, e.g. "SDXL (single file, 6.9 GB)".
    size_bytes: the size of the weights on disk.
    """

    arch: str
    v_prediction_hint: bool
    format: str
    message: str
    local_path: str = ""
    summary: str = ""
    size_bytes: int = 0

    @property
    def v2(self) -> bool:
        """What Kohya's "v2" checkbox should say for this model."""
        return self.arch == "sd2"

    @property
    def sdxl(self) -> bool:
        """What Kohya's "SDXL" checkbox should say for this model."""
        return self.arch == "sdxl"


def size_text(size: int) -> str:
    """Bytes as people read them on a download page: "6.9 GB", "1.7 MB"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def detect_model(path: str) -> ModelInfo:
    """Say what `path` is (arch, v-prediction hint, format) or raise ModelLoadError."""
    text = str(path).strip()
    if not text:
        raise ModelLoadError(
            "No base model given: set the pretrained model to a diffusers folder, "
            "a .safetensors/.ckpt file, or a Hugging Face model id."
        )
    local = Path(text).expanduser()
    if local.is_dir():
        return _detect_folder(local, shown=text)
    if local.is_file():
        return _detect_file(local)
    if local.exists():
        raise ModelLoadError(f"{text} is neither a file nor a folder.")
    if HUB_ID.match(text) and not text.lower().endswith(SINGLE_FILE_SUFFIXES):
        return _detect_hub_id(text)
    raise ModelLoadError(
        f"{text} does not exist. Check the path: the base model is a diffusers folder "
        "(with model_index.json), a .safetensors/.ckpt file, or a Hugging Face model id."
    )


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(
            f"{path} ({what}) cannot be read: {err}. The model folder looks damaged; "
            "download or copy it again."
        ) from err
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} ({what}) is not a JSON object; the model folder looks damaged.")
    return data


def _listed(index: dict, component: str) -> bool:
    """model_index.json lists a component as [library, class]; [null, null] means absent."""
    entry = index.get(component)
    return isinstance(entry, list) and len(entry) == 2 and entry[0] is not None


def _detect_folder(folder: Path, shown: str) -> ModelInfo:
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise ModelLoadError(_no_index_message(folder, shown))
    index = _read_json(index_file, "model_index.json")
    class_name = str(index.get("_class_name", ""))
    if "XL" in class_name or _listed(index, "text_encoder_2"):
        arch = "sdxl"
        if not _listed(index, "text_encoder"):
            raise ModelLoadError(
                f"{shown} is an SDXL refiner ({class_name}, no first text encoder); "
                "LoRA training needs the SDXL base model."
            )
        required = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")
    else:
        required = ("unet", "vae", "text_encoder", "tokenizer")
        arch = "sd1"
    missing = [name for name in required if not _listed(index, name)]
    if missing:
        raise ModelLoadError(
            f"{shown} is a {class_name or 'diffusers'} folder without {', '.join(missing)}; "
            "it is not a Stable Diffusion 1.x/2.x/XL text-to-image model."
        )
    absent = [name for name in required if not (folder / name).is_dir()]
    if absent:
        raise ModelLoadError(
            f"{shown} is incomplete: the sub-folder(s) {', '.join(absent)} are missing. "
            "Download or copy the whole model folder again."
        )
    unet_config = _read_json(folder / "unet" / "config.json", "unet/config.json")
    in_channels = unet_config.get("in_channels", 4)
    if in_channels != 4:
        raise ModelLoadError(
            f"{shown} has a U-Net with {in_channels} input channels (an inpainting or "
            "other special model); LoRA training needs a normal text-to-image model."
        )
    if arch == "sd1":
        text_config = _read_json(folder / "text_encoder" / "config.json", "text_encoder/config.json")
        # SD2 uses OpenCLIP ViT-H: 1024 wide, plain gelu (SD1's CLIP ViT-L is 768, quick_gelu).
        if text_config.get("hidden_size") == 1024 or text_config.get("hidden_act") == "gelu":
            arch = "sd2"
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    v_hint = False
    if scheduler_file.is_file():
        v_hint = _read_json(scheduler_file, "scheduler_config.json").get("prediction_type") == "v_prediction"
    message = f"{ARCH_NAMES[arch]} diffusers model {shown}"
    if v_hint:
        message += " (v-prediction, from its scheduler config)"
    size = sum(
        p.stat().st_size for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file()
    )
    label = ARCH_NAMES[arch] + (" v-prediction" if v_hint else "")
    summary = f"{label} (diffusers folder, {size_text(size)})"
    return ModelInfo(arch, v_hint, "diffusers", message, str(folder), summary, size)


def _no_index_message(folder: Path, shown: str) -> str:
    """Explain a folder that is not a diffusers pipeline, pointing at what it does hold."""
    message = f"{shown} is a folder without model_index.json, so it is not a diffusers model folder."
    weights = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".safetensors", ".ckpt"))
    if (folder / "config.json").is_file() and folder.parent != folder:
        message += (
            f" It looks like one component of a model; give its parent folder ({folder.parent}) instead."
        )
    elif weights:
        message += f" It holds {', '.join(weights[:3])}: give the path to the model file itself."
    else:
        message += " Give a diffusers folder, a .safetensors/.ckpt file, or a Hugging Face model id."
    return message


def _detect_file(file: Path) -> ModelInfo:
    size = file.stat().st_size
    if size == 0:
        raise ModelLoadError(
            f"{file} is empty (0 bytes): the download or copy did not finish. Download it again."
        )
    if file.suffix.lower() not in SINGLE_FILE_SUFFIXES:
        raise ModelLoadError(
            f"{file} is not a model file: give a .safetensors/.ckpt checkpoint, "
            "a diffusers folder, or a Hugging Face model id."
        )
    header = read_header(file)
    arch = classify(header, str(file))
    v_hint = header.metadata.get("modelspec.prediction_type", "").lower() in ("v", "v_prediction")
    kind = "single-file checkpoint" if header.container == "safetensors" else "pickled .ckpt checkpoint"
    message = f"{ARCH_NAMES[arch]} {kind} {file}"
    if v_hint:
        message += " (v-prediction, from its metadata)"
    elif arch == "sd2":
        message += (
            ". v-prediction cannot be read from the weights: turn on v_parameterization for a "
            "768-v model (SD 2.0-768, 2.1-768 and models made from them), leave it off for a "
            "512-base model."
        )
    label = ARCH_NAMES[arch] + (" v-prediction" if v_hint else "")
    where = "single file" if header.container == "safetensors" else f"single {file.suffix.lower()} file"
    summary = f"{label} ({where}, {size_text(size)})"
    return ModelInfo(arch, v_hint, "single-file", message, str(file), summary, size)


def _detect_hub_id(repo_id: str) -> ModelInfo:
    """A Hugging Face id is used only when it is already in the local cache (no downloads).

    The GUI's Start (trainer.models.hub) or `hf download` puts it there."""
    folder = cached_folder(repo_id)
    if folder is None:
        raise ModelLoadError(
            f"{repo_id} is neither a local folder/file nor a model in the Hugging Face cache. "
            "Start training in the GUI downloads it; on the command line, download the model "
            f"first (e.g. `hf download {repo_id}`), or give the path to a .safetensors file "
            "or a diffusers folder."
        )
    missing = missing_weights(folder)
    if missing:
        raise ModelLoadError(
            f"{repo_id} is only partly downloaded (no weights yet for {', '.join(missing)}). "
            "Start training in the GUI resumes the download; on the command line, run "
            f"`hf download {repo_id}`."
        )
    info = _detect_folder(folder, shown=repo_id)
    return ModelInfo(
        info.arch,
        info.v_prediction_hint,
        info.format,
        f"{info.message} (from the Hugging Face cache)",
        str(folder),
        info.summary.replace("diffusers folder", "Hugging Face cache"),
        info.size_bytes,
    )
