"""Plain helpers shared by the trainer's tests (fixtures live in conftest.py).

- `ROOT`, `REQUIRED`, `CPU`: the repository, the three settings every config needs, the CPU.
- `make_toy_dataset`, `toy_settings`, `write_preset`: a learnable toy set and the settings
  of a short run on it (tiny model, 64 px, batch 2, AdamW), as a dict or a preset file.
- `resumable_settings`, `train_with_losses`, `load_tensors`, `assert_same_tensors`: runs
  that save their training state, trained in this process with the loss of every step.
- `DataCfg`: a real config with the data settings the dataset resolution reads (small buckets).
- `KOHYA_PATHS`, `load_kohya`: a Kohya GUI user's preset, read by `config_from_dict`.
- `assert_allowed`: a value is one its setting's spec allows (type, range, choices);
  `assert_named_without_traceback`: a refusal names the setting and shows no internals.
- `ToyNet`, `train_toy`: two LoRA layers (text encoder, U-Net) the optimizers can step.
- `network`, `forward`, `forward_with_lycoris_loader`: networks of any LoRA_type on the
  tiny model, its outputs for a fixed input, and the same with lycoris' own loader.

The GUI tests' shared helpers are in tests/lora_gui/gui_fakes.py (no torch there).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

from trainer.config import ConfigError, FieldSpec, TrainingConfig, config_from_dict
from trainer.network import LoRAModule

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"pretrained_model_name_or_path": "m", "train_data_dir": "d", "output_dir": "o"}
CPU = torch.device("cpu")


# ---- a toy set and a short run on it ---------------------------------------------------------
def make_toy_dataset(root: Path, n: int = 4, size: int = 64) -> Path:
    """A learnable toy set: red squares on white, captioned 'toy, red square'."""
    folder = root / "1_toy"
    folder.mkdir(parents=True)
    for i in range(n):
        img = Image.new("RGB", (size, size), "white")
        a = 8 + 4 * i
        for x in range(a, a + size // 2):
            for y in range(a, a + size // 2):
                img.putpixel((x, y), (220, 20, 20))
        img.save(folder / f"img{i}.png")
        (folder / f"img{i}.txt").write_text("toy, red square", encoding="utf-8")
    return root


def toy_settings(model: Path, data: Path, out: Path, **over: Any) -> dict[str, Any]:
    """A short run on the tiny model: 64 px, batch 2, AdamW, 3 epochs saving every 2."""
    values = {
        "pretrained_model_name_or_path": str(model),
        "train_data_dir": str(data),
        "output_dir": str(out),
        "output_name": "toy",
        "mixed_precision": "no",
        "optimizer": "AdamW",
        "learning_rate": 1e-2,
        "unet_lr": 1e-2,
        "text_encoder_lr": 1e-3,
        "lr_scheduler": "constant",
        "lr_warmup": 0,
        "train_batch_size": 2,
        "epoch": 3,
        "save_every_n_epochs": 2,
        "max_resolution": "64,64",
        "min_bucket_reso": 64,
        "max_bucket_reso": 128,
        "bucket_no_upscale": False,
        "network_dim": 4,
        "network_alpha": 4,
        "save_precision": "fp16",
        "seed": 7,
        "num_cpu_threads_per_process": 1,  # tiny models: one thread beats two
    }
    values.update(over)
    return values


def write_preset(tmp: Path, model: Path, data: Path, **over: Any) -> Path:
    """`toy_settings` writing to `tmp/out`, saved as `tmp/preset.json`."""
    path = tmp / "preset.json"
    path.write_text(json.dumps(toy_settings(model, data, tmp / "out", **over)), encoding="utf-8")
    return path


# ---- runs that save their training state -----------------------------------------------------
RESUMABLE = {
    "lr_scheduler": "cosine",
    "epoch": 2,
    "save_every_n_epochs": 1,
    "network_dropout": 0.1,
    "save_precision": "float",
    "save_state": True,
}


def resumable_settings(model: Path, data: Path, out: Path, **over: Any) -> dict[str, Any]:
    """2 epochs of 2 steps (4 images), a LoRA file and its training state after each epoch."""
    return toy_settings(model, data, out, **{**RESUMABLE, **over})


def train_with_losses(values: dict, stop_after: int | None = None) -> tuple[int, dict[int, float], list]:
    """Train in this process; returns (exit code, loss of each step, events).

    `stop_after`: the user presses Stop once that step's loss is known.
    """
    from trainer.run.train import Run, train_with_events

    cfg, _ = config_from_dict(values)
    losses: dict[int, float] = {}
    events: list = []
    stop = threading.Event()
    original = Run.step_loss

    def spy(self, batch, generator):
        loss = original(self, batch, generator)
        step = self.keeper.position.step + 1
        losses[step] = float(loss.detach())
        if stop_after is not None and step >= stop_after:
            stop.set()
        return loss

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Run, "step_loss", spy)
        code = train_with_events(cfg, events.append, stop)
    return code, losses, events


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_tensors(x: dict, y: dict) -> None:
    assert x.keys() == y.keys()
    for key, value in x.items():
        torch.testing.assert_close(value, y[key], rtol=0, atol=1e-6, msg=key)


# ---- settings ----------------------------------------------------------------------------------
# The data settings the dataset resolution reads (small buckets: 128 to 512 px).
DATA_VALUES = {
    "train_data_dir": "",
    "reg_data_dir": "",
    "caption_extension": ".txt",
    "max_resolution": "256,256",
    "enable_bucket": True,
    "min_bucket_reso": 128,
    "max_bucket_reso": 512,
    "bucket_reso_steps": 64,
    "bucket_no_upscale": False,
}


def DataCfg(**values: Any) -> TrainingConfig:  # noqa: N802 - reads like the config it builds
    """A real config with DATA_VALUES, and `values` over them."""
    return TrainingConfig(**{**DATA_VALUES, **values})


# The paths of a Kohya GUI user's preset (Windows paths: nothing is read from them).
KOHYA_PATHS = {
    "pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5",
    "train_data_dir": "C:/img",
    "output_dir": "C:/out",
    "output_name": "mine",
}


def load_kohya(**preset: Any) -> tuple[TrainingConfig, list[str]]:
    """A Kohya GUI preset holding `preset` (and no mixed precision: CPU runs), read as a file is."""
    return config_from_dict({**KOHYA_PATHS, "mixed_precision": "no", **preset})


# What a message about a bad setting must not show: it is for users, not developers.
LEAKS = ("Traceback", "pydantic", "validation error for", "input_type=", "For further information")


def assert_named_without_traceback(exc: ConfigError, key: str) -> None:
    """Every problem has a key and a message, one names `key`, and no internals show."""
    text = str(exc)
    assert exc.problems and all(p.key and p.message for p in exc.problems)
    assert key in exc.by_key() or any(key in p.message for p in exc.problems), text
    assert not any(leak in text for leak in LEAKS), text


def assert_allowed(spec: FieldSpec, value: Any) -> None:
    """`value` is what `spec` allows: its type, within its range, one of its choices."""
    where = (spec.name, value)
    if spec.type is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
    else:
        assert type(value) is spec.type, where
    if spec.minimum is not None:
        assert value > spec.minimum if spec.exclusive_minimum else value >= spec.minimum, where
    if spec.maximum is not None:
        assert value <= spec.maximum, where
    if spec.choices:
        assert value in spec.choices, where


# ---- a toy network for the optimizers --------------------------------------------------------
class ToyNet(nn.Module):
    """A text-encoder and a U-Net LoRA on two small layers: what the optimizers see."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.te_base, self.unet_base = nn.Linear(8, 8), nn.Linear(8, 8)
        self.requires_grad_(False)  # the base model is frozen
        self.te_loras = [LoRAModule("lora_te_text_model_encoder_layers_0_mlp_fc1", self.te_base, 4, 4)]
        self.unet_loras = [LoRAModule("lora_unet_down_blocks_0_attentions_0_proj_in", self.unet_base, 4, 4)]
        for lora in self.loras:
            lora.apply_to()
            self.add_module(lora.lora_name, lora)

    @property
    def loras(self):
        return self.te_loras + self.unet_loras

    def loss(self) -> torch.Tensor:
        x = torch.linspace(-1, 1, 32).reshape(4, 8)
        return ((self.unet_base(self.te_base(x)) - 1.0) ** 2).mean()


def train_toy(net: ToyNet, optimizer, scheduler=None, steps: int = 2) -> None:
    """`steps` optimizer (and scheduler) steps on the toy loss."""
    for _ in range(steps):
        net.loss().backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)


# ---- networks of any LoRA_type on the tiny model ---------------------------------------------
def network(models, lora_type: str, **options):
    """The network `lora_type` builds on `models` (rank 4, conv rank 2, both halves trained)."""
    from trainer.network.build import build_network

    options = {"network_dim": 4, "network_alpha": 2, "conv_dim": 2, "conv_alpha": 1, **options}
    cfg = TrainingConfig(LoRA_type=lora_type, **options)
    return build_network(
        cfg, models.unet, models.text_encoders, arch=models.arch, train_unet=True, train_text_encoder=True
    )


@torch.no_grad()
def forward(models, text_encoder=None, unet=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Text-encoder hidden states and the U-Net's prediction for a fixed input."""
    text_encoder = text_encoder or models.text_encoders[0]
    unet = unet or models.unet
    ids = models.tokenizers[0](
        ["a red square"], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    hidden = text_encoder(ids).last_hidden_state
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    return hidden, unet(x, torch.tensor([500]), hidden).sample


def ia3_modules_from_file(path, holder: nn.Module, unet: nn.Module) -> list:
    """iA3 modules read back with lycoris' IA3Module.make_module_from_state_dict.

    lycoris 4.1.3's generic loader hands that method the file's `on_input` too, which it
    does not take; the class method itself reads the weights (all `on_input` 0 here).
    """
    from lycoris.modules.ia3 import IA3Module
    from safetensors.torch import load_file

    sd = load_file(str(path))
    names = {k.split(".")[0] for k in sd}
    found = {}
    for prefix, root in (("lora_unet", unet), ("lora_te", holder)):
        for module_path, module in root.named_modules():
            name = f"{prefix}_{module_path}".replace(".", "_")
            if name in names:
                found[name] = module
    assert set(found) == names
    assert all(int(sd[f"{n}.on_input"]) == 0 for n in names)
    return [IA3Module.make_module_from_state_dict(n, m, sd[f"{n}.weight"]) for n, m in found.items()]


def forward_with_lycoris_loader(models, path, expected: int, ia3: bool = False):
    """The models' output with the file loaded by lycoris-lora's own loader (then removed)."""
    from lycoris.kohya import create_network_from_weights

    holder = nn.Module()  # the text encoder under 'text_model', as the A1111 / Kohya names spell it
    holder.text_model = models.text_encoders[0]
    if ia3:
        loras = ia3_modules_from_file(path, holder, models.unet)
    else:
        loaded, _ = create_network_from_weights(1.0, str(path), None, holder, models.unet)
        loras = loaded.unet_loras + loaded.text_encoder_loras
    assert len(loras) == expected
    for lora in loras:
        lora.apply_to()
    try:
        return forward(models)
    finally:
        for lora in reversed(loras):
            lora.restore()
