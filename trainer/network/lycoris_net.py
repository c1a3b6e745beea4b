"""LyCORIS networks (LoCon, LoHa, LoKr, iA3, BOFT, Diag-OFT, DyLoRA, GLoRA, full, DoRA) via lycoris-lora.

The modules are made by `lycoris.kohya.create_network`, the entry point the Kohya GUI
uses (`network_module=lycoris.kohya`), so the same layers get the same algorithm. Two
things are ours:
- names: each module is renamed to the Kohya name our LoRA files use (text-encoder
  paths spelled from ``text_model.``, SDXL U-Net paths in the original SGM layout), so
  A1111, Forge and ComfyUI find the layers whatever the transformers version;
- the container: :class:`LycorisNetwork` holds the modules as children named by those
  names, so its state dict *is* the file (``<name>.lora_down.weight``,
  ``<name>.hada_w1_a``, ``<name>.lokr_w1``, ``<name>.weight``/``.on_input`` for iA3,
  ``<name>.oft_blocks``, ``<name>.diff``, ``<name>.dora_scale``, ``<name>.alpha``; DyLoRA's
  rank blocks joined as ``lora_up`` / ``lora_down``), and it offers what the loop needs of
  :class:`trainer.network.LoRANetwork`: ``te_loras``/``unet_loras``, ``apply_to``,
  ``kohya_state_dict``, ``load_kohya_weights``, ``set_multiplier``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from os import PathLike

import torch
from torch import Tensor, nn

from trainer.config.rules.lycoris import ALGOS, OPTION_DEFAULTS, lycoris_kwargs, used_options
from trainer.network.kohya_names import TE1_PREFIX, TE2_PREFIX, TE_PREFIX, UNET_PREFIX, SgmLayout, kohya_name
from trainer.network.module_set import ModuleSet

__all__ = ["ALGOS", "OPTION_DEFAULTS", "LycorisNetwork", "lycoris_preset"]

_PRESET_DEFAULTS = {
    "enable_conv": True,
    "unet_target_module": [],
    "unet_target_name": [],
    "text_encoder_target_module": [],
    "text_encoder_target_name": [],
    "module_algo_map": {},
    "name_algo_map": {},
    "use_fnmatch": False,
    "exclude_name": [],
}


def read_preset_file(path: str) -> dict:
    """A LyCORIS preset .toml (the keys lycoris' own presets use), checked by lycoris'
    preset schema. Raises ValueError naming the file and what is wrong."""
    from lycoris.config_sdk import PresetConfig, PresetValidationError

    from trainer.files import load_toml

    try:
        raw = load_toml(path)
    except ValueError as exc:
        raise ValueError(f"the LyCORIS preset: {exc}") from None
    try:
        return PresetConfig.from_dict(raw).to_dict()
    except PresetValidationError as exc:
        raise ValueError(f"the LyCORIS preset {path}: {exc}") from None


def lycoris_preset(name: str) -> dict:
    """lycoris' built-in preset `name` (or a preset .toml file), every key filled in.

    "TimestepEmbedding" (listed for other architectures) is dropped when the preset
    already names the time-embedding layers one by one: on a diffusers U-Net both
    would wrap the same layers twice, which lycoris refuses.
    """
    from lycoris.config import PRESET

    if name.strip().lower().endswith(".toml"):
        preset = {**_PRESET_DEFAULTS, **read_preset_file(name.strip())}
    elif name not in PRESET:
        raise ValueError(f"unknown LyCORIS preset {name!r}; choose one of {', '.join(PRESET)}")
    else:
        preset = {**_PRESET_DEFAULTS, **PRESET[name]}
    if any(n.startswith("time_embedding") for n in preset["unet_target_name"]):
        preset["unet_target_module"] = [m for m in preset["unet_target_module"] if m != "TimestepEmbedding"]
    return preset


def _lycoris_to_kohya_names(
    unet: nn.Module | None, text_encoders: Sequence[nn.Module], arch: str
) -> dict[str, str]:
    """lycoris' module name (prefix + the model's own path) -> our Kohya name."""
    names: dict[str, str] = {}
    if unet is not None:
        layout = SgmLayout.from_config(unet.config) if arch == "sdxl" else None
        for path, _ in unet.named_modules():
            if not path:
                continue
            ours = path
            if layout is not None:
                try:
                    ours = layout.to_sgm(path)
                except ValueError:
                    ours = path  # a module with no SGM name keeps its diffusers path
            names[kohya_name("lora_unet_", path)] = kohya_name(UNET_PREFIX, ours)
    ours_prefixes = (TE1_PREFIX, TE2_PREFIX) if arch == "sdxl" else (TE_PREFIX,)
    lyco_prefixes = ("lora_te1_", "lora_te2_") if arch == "sdxl" else ("lora_te_",)
    for encoder, lyco, ours in zip(text_encoders, lyco_prefixes, ours_prefixes, strict=False):  # no TE: none
        for path, _ in encoder.named_modules():
            if not path:
                continue
            spelled = path if path.startswith("text_model.") else "text_model." + path
            names[kohya_name(lyco, path)] = kohya_name(ours, spelled)
    return names


class LycorisNetwork(ModuleSet):
    """The LyCORIS modules of one run, children named by their Kohya names.

    `options` are lycoris' network arguments by the Kohya GUI's names (preset, dora_wd,
    factor, ...: see :mod:`trainer.config.rules.lycoris`); each type gets the ones the
    Kohya GUI sends with it.
    """

    def __init__(
        self,
        unet: nn.Module,
        text_encoders: Sequence[nn.Module],
        *,
        arch: str,
        lora_type: str,
        rank: int,
        alpha: float,
        conv_rank: int,
        conv_alpha: float,
        dropout: float = 0.0,
        rank_dropout: float = 0.0,
        module_dropout: float = 0.0,
        options: dict | None = None,
        train_unet: bool = True,
        train_text_encoder: bool = True,
        multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        from lycoris.kohya import LycorisNetworkKohya
        from lycoris.logging import logger as lycoris_logger

        if not (train_unet or train_text_encoder):
            raise ValueError("nothing to train: both train_unet and train_text_encoder are False")
        self.arch, self.lora_type = arch, lora_type
        self.algo = ALGOS.get(lora_type, "")
        self.rank, self.alpha, self.conv_rank, self.conv_alpha = rank, alpha, conv_rank, conv_alpha
        self.multiplier = multiplier
        self.options = used_options(lora_type, dict(options or {}))
        kwargs = lycoris_kwargs(lora_type, self.options)
        te_arg = list(text_encoders) if arch == "sdxl" else text_encoders[0]
        level = lycoris_logger.level
        lycoris_logger.setLevel(logging.WARNING)  # lycoris reports each module at INFO
        try:
            # What lycoris.kohya.create_network does, with a complete preset (its presets are
            # class attributes that would otherwise leak from one network to the next).
            LycorisNetworkKohya.apply_preset(lycoris_preset(self.options["preset"]))
            net = LycorisNetworkKohya(
                te_arg if train_text_encoder else None,
                unet,
                multiplier=multiplier,
                lora_dim=rank,
                conv_lora_dim=conv_rank,
                alpha=alpha,
                conv_alpha=conv_alpha,
                dropout=dropout,
                rank_dropout=rank_dropout,
                module_dropout=module_dropout,
                network_module=self.algo,
                warn_on_unmatched=False,
                **kwargs,
            )
        finally:
            lycoris_logger.setLevel(level)
        renames = _lycoris_to_kohya_names(unet, text_encoders if train_text_encoder else [], arch)
        for lora in net.text_encoder_loras + net.unet_loras:
            lora.lora_name = renames.get(lora.lora_name, lora.lora_name)
        self.te_loras: list[nn.Module] = list(net.text_encoder_loras) if train_text_encoder else []
        self.unet_loras: list[nn.Module] = list(net.unet_loras) if train_unet else []
        net.text_encoder_loras, net.unet_loras = self.te_loras, self.unet_loras
        net.loras = self.te_loras + self.unet_loras
        object.__setattr__(self, "_lycoris", net)  # not a child: its modules are ours
        for lora in self.loras:
            self.add_module(lora.lora_name, lora)

    def apply_max_norm(self, max_norm: float, device: torch.device) -> tuple[int, float, float]:
        """lycoris' max-norm regularisation: (modules scaled, mean norm, max norm)."""
        scaled, mean, largest = self._lycoris.apply_max_norm_regularization(max_norm, device)
        return int(scaled), float(mean), float(largest)

    def kohya_state_dict(self, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        """Every module's tensors under ``<kohya name>.<lycoris key>``, detached."""
        return {k: v.detach().to(dtype=dtype or v.dtype) for k, v in self.state_dict().items()}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As nn.Module's, also taking the file layout of modules that save another one (DyLoRA)."""
        return super().load_state_dict(self._to_parameter_keys(state_dict), strict=strict, assign=assign)

    def _to_parameter_keys(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """DyLoRA saves its rank blocks joined as ``lora_up.weight`` / ``lora_down.weight``;
        its parameters are the blocks (``up_list.i`` / ``down_list.i``): split them again."""
        out = dict(state_dict)
        for lora in self.loras:
            up_key, down_key = f"{lora.lora_name}.lora_up.weight", f"{lora.lora_name}.lora_down.weight"
            if not hasattr(lora, "up_list") or up_key not in out or down_key not in out:
                continue
            ups = out.pop(up_key).reshape(lora.up_list[0].shape[0], -1).split(lora.block_size, dim=1)
            downs = out.pop(down_key).reshape(lora.lora_dim, -1).split(lora.block_size, dim=0)
            for i, (up, down) in enumerate(zip(ups, downs, strict=True)):
                out[f"{lora.lora_name}.up_list.{i}"] = up
                out[f"{lora.lora_name}.down_list.{i}"] = down
        return out

    @torch.no_grad()
    def load_kohya_weights(self, path_or_state_dict: str | PathLike | dict[str, Tensor]) -> None:
        """Continue from a LyCORIS file of the same algorithm, rank and layers."""
        source, loaded, own, missing, unknown = self.weights_to_load(path_or_state_dict)
        wrong = [k for k in set(own) & set(loaded) if loaded[k].numel() != own[k].numel()]
        if missing or unknown or wrong:
            raise ValueError(
                f"LyCORIS weights in {source} do not fit this network ({self.lora_type}, rank "
                f"{self.rank}, conv rank {self.conv_rank}): {len(missing)} missing keys {missing[:3]}, "
                f"{len(unknown)} unknown keys {unknown[:3]}, {len(wrong)} of another size {wrong[:3]}"
            )
        self.load_state_dict({k: loaded[k].reshape(own[k].shape) for k in own})
