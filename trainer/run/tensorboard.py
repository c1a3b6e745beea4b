"""TensorBoard logs of a run, in `<logging_dir>/<output_name>_<YYYYmmddHHMMSS>/`.

Written when `logging_dir` is set, with the tags sd-scripts uses so existing dashboards
keep working: `loss/current`, `loss/average` (the epoch's running mean), `loss/epoch`,
and `lr/<parameter group>` (`lr/unet`, `lr/textencoder`, ...), every optimizer step.
Reading a loss off the GPU waits for it, so steps are buffered as tensors and turned
into numbers only when the trainer reads the loss anyway (`flush`), and at the end.
Open with `tensorboard --logdir <logging_dir>`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

# our parameter-group names -> the tags sd-scripts writes
_GROUP_TAGS = {"text_encoder": "textencoder", "unet": "unet"}


def group_tags(groups: list[dict]) -> list[str]:
    """One `lr/...` tag per optimizer parameter group, unique, in group order."""
    tags: list[str] = []
    for i, group in enumerate(groups):
        name = str(group.get("name") or f"group{i}")
        tag = f"lr/{_GROUP_TAGS.get(name, name)}"
        while tag in tags:
            tag += f"_{i}"
        tags.append(tag)
    return tags


class TensorBoardLogger:
    """Buffers per-step scalars and writes them with torch's SummaryWriter."""

    def __init__(self, logging_dir: str | Path, output_name: str):
        from torch.utils.tensorboard import SummaryWriter

        stamp = time.strftime("%Y%m%d%H%M%S")
        self.folder = Path(logging_dir) / f"{output_name}_{stamp}"
        self.writer = SummaryWriter(log_dir=str(self.folder))
        self._pending: list[tuple[int, torch.Tensor, torch.Tensor, dict[str, float]]] = []

    def log_step(self, step: int, loss: torch.Tensor, avg_loss: torch.Tensor, lrs: dict[str, float]) -> None:
        """Remember one optimizer step (no GPU sync here)."""
        self._pending.append((step, loss.detach().clone(), avg_loss.detach().clone(), dict(lrs)))

    def flush(self) -> None:
        """Write what is buffered."""
        for step, loss, avg, lrs in self._pending:
            self.writer.add_scalar("loss/current", float(loss), step)
            self.writer.add_scalar("loss/average", float(avg), step)
            for tag, lr in lrs.items():
                self.writer.add_scalar(tag, lr, step)
        self._pending.clear()
        self.writer.flush()

    def log_epoch(self, epoch: int, avg_loss: float) -> None:
        self.flush()
        self.writer.add_scalar("loss/epoch", avg_loss, epoch)

    def close(self) -> None:
        self.flush()
        self.writer.close()
