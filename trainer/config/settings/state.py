"""Training-state settings (Advanced tab, "Resume"): save the state beside each LoRA, resume from it.

Key names are the Kohya GUI's (`save_state`, `save_state_on_train_end`, `resume`), so a
kohya_ss preset that used them keeps working. What the state holds and how it is
checked against the config: `trainer.run.state`.
"""

from __future__ import annotations

from pydantic import BaseModel

from trainer.config.schema import setting as S
from trainer.config.settings.choices import ADV

GROUP = "Resume"


class StateSettings(BaseModel):
    """Save the training state, and continue a run from one."""

    save_state: bool = S(
        False,
        tab=ADV,
        group=GROUP,
        label="Save training state",
        label_ja="学習状態を保存",
        help="With every LoRA save (and on Stop) also write a <name>-state folder beside it: "
        "optimizer, LR schedule, random state and position, so Resume continues exactly. "
        "It is about 3x the size of a float LoRA.",
        help_ja="LoRAを保存するたび(停止時も)、隣に<名前>-stateフォルダを書き出します。オプティマイザ・"
        "学習率・乱数・位置を含み、「再開」で正確に続きから学習できます。サイズはfloatのLoRAの約3倍。",
    )
    save_state_on_train_end: bool = S(
        False,
        tab=ADV,
        group=GROUP,
        label="Save training state at the end",
        label_ja="終了時に学習状態を保存",
        help="Write <name>-state only when training ends or is stopped, to continue it later "
        "with more epochs.",
        help_ja="学習の終了時・停止時にだけ<名前>-stateを書き出します。後でエポックを増やして続けるときに。",
    )
    save_last_n_epochs_state: int = S(
        0,
        tab=ADV,
        group=GROUP,
        ge=0,
        advanced=True,
        label="Keep only last N epoch states",
        label_ja="最新Nエポック分の学習状態だけ残す",
        help="Keep only the newest N per-epoch -state folders (0 = as many as 'Keep only last N "
        "epochs' keeps of the LoRA files, or all when that is 0).",
        help_ja="エポックごとの-stateフォルダを新しいN個だけ残します(0=「最新Nエポック分だけ残す」と同じ数。"
        "それも0ならすべて残す)。",
    )
    save_last_n_steps_state: int = S(
        0,
        tab=ADV,
        group=GROUP,
        ge=0,
        advanced=True,
        label="Keep only last N steps' states",
        label_ja="最新Nステップ分の学習状態だけ残す",
        help="Keep only the step -state folders saved in the last N steps (0 = the same window "
        "as 'Keep only last N steps', or all when that is 0).",
        help_ja="直近Nステップ以内に保存したステップごとの-stateフォルダだけを残します(0=「最新Nステップ分"
        "だけ残す」と同じ。それも0ならすべて残す)。",
    )
    resume: str = S(
        "",
        tab=ADV,
        group=GROUP,
        widget="path-dir",
        label="Resume from saved training state",
        label_ja="保存した学習状態から再開",
        help="A <name>-state folder written by Save training state. Training continues from "
        "its step with the same base model, network, dataset and batch size "
        "(a state that does not match is refused, naming the difference).",
        help_ja="「学習状態を保存」で書き出した<名前>-stateフォルダ。そのステップから学習を続けます。"
        "ベースモデル・ネットワーク・データセット・バッチサイズが異なる状態は理由を示して拒否します。",
    )
