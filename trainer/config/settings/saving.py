"""Intermediate saves by step, and pruning of older intermediate saves (Parameters tab).

The per-epoch saves (`save_every_n_epochs`) are in the Basic group; these add saves every
N steps for long epochs, and keep a disk from filling with checkpoints. Pruning follows
sd-scripts: `save_last_n_epochs` keeps a number of files, `save_last_n_steps` keeps the
step files of the last N steps. The final file is never pruned.
"""

from __future__ import annotations

from pydantic import BaseModel

from trainer.config.schema import setting as S
from trainer.config.settings.choices import PARAM


class SavingSettings(BaseModel):
    """Parameters tab, group Saving: step saves and how many intermediate files to keep."""

    save_every_n_steps: int = S(
        0,
        tab=PARAM,
        group="Saving",
        ge=0,
        label="Save every N steps",
        label_ja="Nステップごとに保存",
        help="Also save a LoRA every N steps as <name>-step00000500.safetensors (0 = off).",
        help_ja="Nステップごとにも <名前>-step00000500.safetensors として保存します(0=なし)。",
    )
    save_last_n_epochs: int = S(
        0,
        tab=PARAM,
        group="Saving",
        ge=0,
        label="Keep only last N epochs",
        label_ja="最新Nエポック分だけ残す",
        help="Keep only the newest N per-epoch files; older ones are deleted after a new one "
        "is safely written (0 = keep all). The final file is always kept.",
        help_ja="エポックごとの途中保存を新しいN個だけ残します(0=すべて残す)。最終ファイルは常に残ります。",
    )
    save_last_n_steps: int = S(
        0,
        tab=PARAM,
        group="Saving",
        ge=0,
        label="Keep only last N steps",
        label_ja="最新Nステップ分だけ残す",
        help="Keep only the step files saved in the last N steps, as sd-scripts does (every 100 "
        "and last 300 keeps 4 files); older ones are deleted after a new one is written.",
        help_ja="直近Nステップ以内に保存したステップごとのファイルだけを残します(sd-scriptsと同じ)。",
    )
