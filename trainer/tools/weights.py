"""A model's weights read one layer at a time: what extract needs of two whole models.

`open_weights(path)` gives the U-Net and text encoder(s) built on the meta device (no
memory: they only tell which layers a LoRA targets and their names) and `weight(layer)`,
which reads that layer's weight from the file when asked. So extracting from two SDXL
models holds about one layer of each, not two models. Single-file checkpoints are read
through the original-layout name map (trainer.models.ldm_layout, the loader's own);
diffusers folders (and cached Hugging Face ids) through their components' .safetensors
files. A component stored as .bin is read whole (weights only).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from trainer.tools.lora_io import ToolError

TEXT_COMPONENTS = {
    "sd1": ("text_encoder",),
    "sd2": ("text_encoder",),
    "sdxl": ("text_encoder", "text_encoder_2"),
}


@dataclass
class LazyModel:
    """The layers of one model on the meta device, and their weights read on demand."""

    arch: str
    v_parameterization: bool
    unet: nn.Module
    text_encoders: list[nn.Module]
    readers: dict[int, Callable[[], Tensor]] = field(default_factory=dict)  # id(layer) -> its weight

    def weight(self, layer: nn.Module) -> Tensor:
        return self.readers[id(layer)]()


def _meta_modules(arch: str, configs: dict[str, dict]) -> tuple[nn.Module, list[nn.Module]]:
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(configs["unet"])
        encoders = [
            (CLIPTextModelWithProjection if c == "text_encoder_2" else CLIPTextModel)(
                CLIPTextConfig.from_dict(configs[c])
            )
            for c in TEXT_COMPONENTS[arch]
        ]
    return unet, encoders


def _register(model: LazyModel, module: nn.Module, read: Callable[[str], Tensor]) -> None:
    """Give every Linear / Conv2d of `module` a reader of its '<path>.weight'."""
    for path, layer in module.named_modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            model.readers[id(layer)] = functools.partial(read, f"{path}.weight")


@contextmanager
def open_weights(path: str, what: str) -> Iterator[LazyModel]:
    """The model at `path` (folder, single file or cached Hugging Face id), read lazily."""
    from trainer.models import ModelLoadError, detect_model

    try:
        info = detect_model(path)
        with ExitStack() as stack:
            if info.format == "single-file":
                model = _single_file(Path(info.local_path), info, stack, path)
            else:
                model = _folder(Path(info.local_path), info, stack)
            yield model
    except ModelLoadError as err:
        raise ToolError(f"{what}: {err}") from err


def _single_file(file: Path, info, stack: ExitStack, shown: str) -> LazyModel:
    from trainer.models.ldm_configs import config_name, derive_configs
    from trainer.models.ldm_layout import COMPONENT_PREFIXES, TEXT_LAYOUTS, Source, text_source
    from trainer.models.single_file import _read, open_tensors
    from trainer.network.kohya_names import SgmLayout

    tensors = stack.enter_context(open_tensors(file))
    prefixes = COMPONENT_PREFIXES[info.arch]
    parts = {
        component: {k[len(prefix) :]: s for k, s in tensors.shapes.items() if k.startswith(prefix)}
        for component, prefix in prefixes.items()
    }
    configs = derive_configs(info.arch, config_name(info.arch, info.v_prediction_hint), parts, shown)
    unet, encoders = _meta_modules(info.arch, configs)
    model = LazyModel(info.arch, info.v_prediction_hint, unet, encoders)
    layout = SgmLayout.from_config(unet.config)

    def reader(prefix: str, source_of: Callable[[str], Source]) -> Callable[[str], Tensor]:
        def read(key: str) -> Tensor:
            source = source_of(key)
            return _read(tensors, prefix + source.name, source)

        return read

    _register(model, unet, reader(prefixes["unet"], lambda key: Source(layout.to_sgm(key))))
    for component, encoder in zip(TEXT_COMPONENTS[info.arch], encoders, strict=True):
        source_of = functools.partial(text_source, TEXT_LAYOUTS[info.arch][component])
        _register(model, encoder, reader(prefixes[component], source_of))
    return model


def _folder(folder: Path, info, stack: ExitStack) -> LazyModel:
    configs = {
        c: json.loads((folder / c / "config.json").read_text(encoding="utf-8"))
        for c in ("unet", *TEXT_COMPONENTS[info.arch])
    }
    unet, encoders = _meta_modules(info.arch, configs)
    model = LazyModel(info.arch, info.v_prediction_hint, unet, encoders)
    for component, module in zip(("unet", *TEXT_COMPONENTS[info.arch]), (unet, *encoders), strict=True):
        _register(model, module, _component_reader(folder / component, stack))
    return model


def _component_reader(folder: Path, stack: ExitStack) -> Callable[[str], Tensor]:
    """Read '<key>' of a diffusers component from its .safetensors (shards too) or .bin."""
    from safetensors import safe_open

    where: dict[str, object] = {}
    found = sorted(folder.glob("*.safetensors"))
    files = [p for p in found if "." not in p.stem] or found  # a variant (.fp16) only when alone
    if files:
        for file in files:
            handle = stack.enter_context(safe_open(str(file), framework="pt"))
            where.update(dict.fromkeys(handle.keys(), handle))  # noqa: SIM118 (not a dict)
        get = lambda key: where[key].get_tensor(key)  # noqa: E731
    else:
        bins = sorted(folder.glob("*.bin"))
        if not bins:
            raise ToolError(
                f"{folder} holds no .safetensors or .bin weights; the model folder is incomplete."
            )
        state: dict[str, Tensor] = {}
        for file in bins:
            state.update(torch.load(file, map_location="cpu", weights_only=True))
        where = dict.fromkeys(state)
        get = state.__getitem__

    def read(key: str) -> Tensor:
        for name in (key, "text_model." + key, key.removeprefix("text_model.")):
            if name in where:
                return get(name)
        raise ToolError(f"{folder}: no weight {key}; the model folder is incomplete or of another kind.")

    return read
