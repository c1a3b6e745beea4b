"""The Samples tab: preview images made with the LoRA while it trains.

Kohya's rule, kept: when `sample_every_n_epochs` is set, `sample_every_n_steps` is not
used. The prompts are a prompt file or the prompts themselves (the Kohya GUI stores the
text in `sample_prompts`); each line may end with Kohya's flags --n --w --h --s --l --d.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from trainer.config.schema import setting as S

SAMPLES = "Samples"
# The Kohya GUI's sampler names ("k_" names are aliases of the plain ones).
SAMPLERS = (
    "euler_a",
    "euler",
    "ddim",
    "dpmsolver++",
    "dpmsolver",
    "dpmsingle",
    "pndm",
    "lms",
    "heun",
    "dpm_2",
    "dpm_2_a",
    "k_euler_a",
    "k_euler",
    "k_lms",
    "k_dpm_2",
    "k_dpm_2_a",
)


class SampleSettings(BaseModel):
    """Samples tab: when to make preview images, from which prompts, with which sampler."""

    sample_every_n_steps: int = S(
        0,
        tab=SAMPLES,
        group="Samples",
        ge=0,
        label="Sample every n steps",
        label_ja="Nステップごとにサンプル",
        help="Make preview images every N steps (0 = off). Not used when 'every n epochs' is set.",
        help_ja="Nステップごとにサンプル画像を生成します(0=なし)。エポック指定があるとそちらを優先。",
    )
    sample_every_n_epochs: int = S(
        0,
        tab=SAMPLES,
        group="Samples",
        ge=0,
        label="Sample every n epochs",
        label_ja="Nエポックごとにサンプル",
        help="Make preview images after every N-th epoch (0 = off).",
        help_ja="Nエポックごとにサンプル画像を生成します(0=なし)。",
    )
    sample_at_first: bool = S(
        False,
        tab=SAMPLES,
        group="Samples",
        label="Sample before training",
        label_ja="学習前にもサンプル",
        help="Also make preview images before the first step, to compare against.",
        help_ja="比較用に、学習を始める前にもサンプル画像を生成します。",
    )
    sample_sampler: Literal[SAMPLERS] = S(
        "euler_a",
        tab=SAMPLES,
        group="Samples",
        label="Sample sampler",
        label_ja="サンプラー",
        help="The sampler of the preview images (euler_a is Kohya's default; dpmsolver++ is DPM++ 2M).",
        help_ja="サンプル画像のサンプラー(Kohyaの既定はeuler_a。dpmsolver++はDPM++ 2M)。",
    )
    sample_prompts: str = S(
        "",
        tab=SAMPLES,
        group="Samples",
        widget="textarea",
        label="Sample prompts",
        label_ja="サンプルのプロンプト",
        help="One prompt per line, or the path of a prompt file. Flags after a prompt: "
        "--n negative prompt, --w width, --h height, --s steps, --l CFG scale, --d seed. "
        "e.g. 'mychar, smiling --n lowres --w 512 --h 768 --s 28 --l 7 --d 1'",
        help_ja="1行に1つのプロンプト、またはプロンプトファイルのパス。プロンプトの後に "
        "--n ネガティブ --w 幅 --h 高さ --s ステップ数 --l CFGスケール --d シード を指定できます。",
    )
