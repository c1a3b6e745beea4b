"""What every tool does around its maths: check the options first, show progress, save.

Options are checked before any heavy work (a bad --save_to must not cost a ten-minute
extraction); each message names the option, the value and what to do. Files are written
with trainer.network.lora_file.save_lora or trainer.files (atomically: a crash leaves the
old file or none, never half of one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from trainer.tools.lora_io import ToolError

T = TypeVar("T")
PRECISIONS = ("fp16", "bf16", "float")
MODEL_KINDS = "give a model folder, a .safetensors / .ckpt file or a Hugging Face id"


@dataclass
class ToolResult:
    """What a tool did: the file it wrote (if any), lines for a person, facts for programs."""

    path: Path | None = None
    lines: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        return "\n".join(self.lines)


def check_save_to(
    save_to: str | Path | None, suffix: str = ".safetensors", inputs: Iterable[Path] = ()
) -> Path:
    """The output path, or ToolError: missing, wrong suffix, a folder, one of the inputs."""
    if save_to is None or not str(save_to).strip():
        raise ToolError(f"--save_to is missing; give the {suffix} file to write.")
    path = Path(str(save_to).strip()).expanduser()
    if path.suffix.lower() != suffix:
        raise ToolError(f"--save_to {path} must end in {suffix}.")
    if path.is_dir():
        raise ToolError(f"--save_to {path} is a folder; give a file name ending in {suffix}.")
    for source in inputs:
        if path.resolve() == Path(source).resolve():
            raise ToolError(f"--save_to {path} is also an input; choose another file name.")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ToolError(f"--save_to {path}: {parent} is not a folder.")
    return path


def check_precision(name: str | None, option: str = "--save_precision") -> torch.dtype | None:
    """torch dtype of fp16 / bf16 / float; None when not given."""
    if name is None or name == "":
        return None
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32, "fp32": torch.float32}
    if str(name).lower() not in dtypes:
        raise ToolError(f"{option} {name!r} is not one of {', '.join(PRECISIONS)}.")
    return dtypes[str(name).lower()]


def check_device(name: str | None) -> torch.device:
    """cpu or cuda[:n]; cuda only where a GPU is present."""
    text = (name or "cpu").strip().lower()
    if text not in ("cpu", "cuda") and not text.startswith("cuda:"):
        raise ToolError(f"--device {name!r} is not cpu or cuda.")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise ToolError(f"--device {name}: no CUDA GPU is available here; use --device cpu.")
    return torch.device(text)


def each(items: Iterable[T], desc: str, total: int | None = None, show: bool = True) -> Iterator[T]:
    """`items` with a progress bar (tqdm, which the GUI's progress follows too)."""
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, disable=not show, unit="module", leave=False)


def write_lora(path: Path, tensors: dict, metadata: dict[str, str], dtype: torch.dtype) -> Path:
    """save_lora with its errors as ToolError (the message names the path and the cause)."""
    from trainer.network.lora_file import SaveError, save_lora

    try:
        return save_lora(path, tensors, metadata, dtype=dtype)
    except SaveError as err:
        raise ToolError(str(err)) from err


def size_text(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def arch_metadata(arch: str, v_parameterization: bool) -> dict[str, str]:
    """The metadata that tells A1111 / ComfyUI / CivitAI which model family a LoRA is for."""
    from trainer.network.lora_file import _ARCHITECTURE, _BASE_VERSION  # the trainer's own values

    v = arch == "sd2" and v_parameterization
    return {
        "ss_network_module": "networks.lora",
        "ss_v2": str(arch == "sd2"),
        "ss_base_model_version": "sd_v2_v" if v else _BASE_VERSION[arch],
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v2-768-v/lora" if v else _ARCHITECTURE[arch],
        "modelspec.prediction_type": "v" if v_parameterization else "epsilon",
    }


def load_base(
    path: str, what: str, *, v2: bool, sdxl: bool, v_parameterization: bool, dtype: torch.dtype
) -> Any:
    """trainer.models.load_models with its errors as ToolError naming the option."""
    from trainer.models import ModelLoadError, load_models

    if not str(path or "").strip():
        raise ToolError(f"{what} is missing; {MODEL_KINDS}.")
    try:
        flags = {"v2": v2, "sdxl": sdxl, "v_parameterization": v_parameterization}
        return load_models(str(path).strip(), **flags, dtype=dtype)
    except ModelLoadError as err:
        raise ToolError(f"{what}: {err}") from err


def check_model_path(path: str | None, what: str) -> str:
    """A model argument checked before any loading: a local file / folder must exist."""
    from trainer.models import ModelLoadError, detect_model

    text = str(path or "").strip()
    if not text:
        raise ToolError(f"{what} is missing; {MODEL_KINDS}.")
    try:
        detect_model(text)
    except ModelLoadError as err:
        raise ToolError(f"{what}: {err}") from err
    return text
