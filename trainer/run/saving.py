"""The LoRA file of a save (Kohya keys, ss_* metadata) and the crash log of a failed run.

`LoRASaver` is step 3 of a save (trainer.run.save_point: loss checked, averaged weights,
this file, the training state, pruning); it writes on the main process only.
"""

from __future__ import annotations

import time
from pathlib import Path

from trainer.config import TrainingConfig, parse_resolution
from trainer.events import Event, EventCallback
from trainer.network.lora_file import build_metadata, kohya_dtype, save_lora
from trainer.plan.training_plan import Plan


class LoRASaver:
    """Writes `<output_dir>/<name>.safetensors` with Kohya keys and ss_* metadata."""

    def __init__(
        self,
        cfg: TrainingConfig,
        plan: Plan,
        models,
        network,
        dataset,
        started_at: float,
        is_main: bool,
        emit: EventCallback,
        lr_warmup_steps: int = 0,
    ):
        self.cfg, self.plan, self.models, self.network = cfg, plan, models, network
        self.dataset, self.started_at, self.is_main, self.emit = dataset, started_at, is_main, emit
        self.lr_warmup_steps = lr_warmup_steps
        self.bucket_info = dataset.bucket_info()
        self.tag_frequency = dataset.tag_frequency()

    def network_args(self) -> dict:
        """ss_network_args as Kohya writes them (conv dims, dropouts, LyCORIS options, ...)."""
        from trainer.network.build import kohya_network_args

        return kohya_network_args(self.cfg)[1]

    def save(self, name: str, epoch: int, step: int, final: bool = False) -> Path:
        path = Path(self.cfg.output_dir) / f"{name}.safetensors"
        if not self.is_main:
            return path
        cfg = self.cfg
        from trainer.network.build import kohya_network_args

        metadata = build_metadata(
            cfg,
            arch=self.models.arch,
            v_parameterization=self.models.v_parameterization,
            network_args=self.network_args(),
            num_train_images=self.dataset.num_train_images,
            num_reg_images=self.dataset.num_reg_images,
            epoch=epoch,
            steps=step,
            total_epochs=self.plan.epochs,
            max_train_steps=self.plan.total_steps,
            lr_warmup_steps=self.lr_warmup_steps,
            bucket_info=self.bucket_info,
            tag_frequency=self.tag_frequency,
            training_started_at=self.started_at,
            resolution=parse_resolution(cfg.max_resolution),
            model_name=cfg.pretrained_model_name_or_path,
            network_module=kohya_network_args(cfg)[0],
        )
        tensors = self.network.kohya_state_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_lora(path, tensors, metadata, dtype=kohya_dtype(cfg.save_precision))
        self.emit(Event("saved", {"path": str(path), "epoch": epoch, "step": step, "final": final}))
        return path


def write_crash_log(cfg: TrainingConfig, text: str) -> Path | None:
    """Append a traceback to `<logging_dir or output_dir>/<output_name>.log`; never raises.
    Secret settings (tokens, API keys) are replaced by *** should a message quote them."""
    from trainer.run.guards import redact

    folder = cfg.logging_dir.strip() or cfg.output_dir.strip()
    if not folder:
        return None
    try:
        path = Path(folder) / f"{cfg.output_name or 'training'}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n{redact(text, cfg)}")
        return path
    except OSError:
        return None


__all__ = ["LoRASaver", "write_crash_log"]
