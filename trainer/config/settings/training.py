"""Advanced training settings: noise and loss, text-encoder stop, fp8 base weights.

Key names, defaults and meanings are the Kohya GUI's (sd-scripts' arguments), so a
kohya_ss preset that sets them trains the same way here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from trainer.config.schema import setting as S
from trainer.config.settings.choices import ADV, PARAM

LOSS_TYPES = ("l2", "l1", "huber", "smooth_l1")
HUBER_SCHEDULES = ("snr", "exponential", "constant")


class TrainingOptionSettings(BaseModel):
    """Noise, loss, text-encoder stop and fp8 base weights (Advanced / Parameters tabs)."""

    # ---- Advanced: noise ------------------------------------------------------------------
    adaptive_noise_scale: float = S(
        0.0,
        tab=ADV,
        group="Noise",
        ge=-1,
        le=1,
        advanced=True,
        label="Adaptive noise scale",
        label_ja="適応ノイズスケール",
        help="Adds this x |mean of each latent channel| to the noise offset, so images far from "
        "mid-grey get more offset (needs Noise offset > 0, type Original; 0 = off).",
        help_ja="latentの各チャンネル平均の絶対値×この値をノイズオフセットに加えます"
        "(ノイズオフセット>0、種類Originalが必要。0=なし)。",
    )
    noise_offset_random_strength: bool = S(
        False,
        tab=ADV,
        group="Noise",
        advanced=True,
        label="Noise offset random strength",
        label_ja="ノイズオフセットの強さをランダムに",
        help="Each step uses a random offset between 0 and Noise offset.",
        help_ja="ステップごとに0~ノイズオフセットの間のランダムな強さを使います。",
    )
    ip_noise_gamma: float = S(
        0.0,
        tab=ADV,
        group="Noise",
        ge=0,
        le=1,
        advanced=True,
        label="IP noise gamma",
        label_ja="IPノイズガンマ",
        help="Input perturbation: extra noise on the noisy input only, not on the target; "
        "0.1 is the paper's value (0 = off).",
        help_ja="入力摂動ノイズ: 入力だけに追加のノイズを加えます(目標は変えません)。論文値は0.1(0=なし)。",
    )
    ip_noise_gamma_random_strength: bool = S(
        False,
        tab=ADV,
        group="Noise",
        advanced=True,
        label="IP noise gamma random strength",
        label_ja="IPノイズガンマの強さをランダムに",
        help="Each step uses a random gamma between 0 and IP noise gamma.",
        help_ja="ステップごとに0~IPノイズガンマの間のランダムな強さを使います。",
    )

    min_timestep: int = S(
        0,
        tab=ADV,
        group="Noise",
        ge=0,
        le=999,
        advanced=True,
        label="Min Timestep",
        label_ja="最小タイムステップ",
        help="Train only on timesteps from this one up (0-999). Low timesteps hold fine detail, "
        "high ones composition. 0 = from the start.",
        help_ja="このタイムステップ以上だけで学習します(0~999)。小さいタイムステップは細部、大きいものは"
        "構図を担います。0=最初から。",
    )
    max_timestep: int = S(
        1000,
        tab=ADV,
        group="Noise",
        ge=1,
        le=1000,
        advanced=True,
        label="Max Timestep",
        label_ja="最大タイムステップ",
        help="Train only on timesteps below this one (1-1000, above Min Timestep). 1000 = to the end.",
        help_ja="このタイムステップ未満だけで学習します(1~1000、最小タイムステップより大きく)。1000=最後まで。",
    )

    # ---- Advanced: loss ---------------------------------------------------------------------
    loss_type: Literal[LOSS_TYPES] = S(
        "l2",
        tab=ADV,
        group="Loss",
        label="Loss type",
        label_ja="損失の種類",
        help="l2 (MSE) is the usual; huber and smooth_l1 are less thrown by outliers "
        "(Huber c and schedule below); l1 is the absolute error.",
        help_ja="通常はl2(MSE)。huberとsmooth_l1は外れ値に強くなります(下のHuber c・スケジュール)。"
        "l1は絶対誤差。",
    )
    huber_schedule: Literal[HUBER_SCHEDULES] = S(
        "snr",
        tab=ADV,
        group="Loss",
        advanced=True,
        label="Huber schedule",
        label_ja="Huberのスケジュール",
        help="How Huber's c changes with the timestep: snr (from the noise level), exponential, "
        "or constant (always Huber c).",
        help_ja="タイムステップによるHuberのcの変え方: snr(ノイズ量から)、exponential、"
        "constant(常にHuber c)。",
    )
    huber_c: float = S(
        0.1,
        tab=ADV,
        group="Loss",
        gt=0,
        le=1,
        advanced=True,
        label="Huber c",
        label_ja="Huber c",
        help="Where the Huber loss turns from squared to linear (smaller = more like l1).",
        help_ja="Huber損失が二乗から線形に変わる点(小さいほどl1に近い)。",
    )
    huber_scale: float = S(
        1.0,
        tab=ADV,
        group="Loss",
        gt=0,
        le=10,
        advanced=True,
        label="Huber scale",
        label_ja="Huberスケール",
        help="Multiplies c of the exponential and constant schedules.",
        help_ja="exponential・constantスケジュールのcに掛ける値。",
    )
    masked_loss: bool = S(
        False,
        tab=ADV,
        group="Loss",
        advanced=True,
        label="Masked loss",
        label_ja="マスク付き損失",
        help="Learn only where the picture is opaque: each image's transparency (alpha channel) "
        "weights its loss, so a transparent background teaches nothing. Images without "
        "transparency train as usual.",
        help_ja="画像の不透明な部分だけを学習します。各画像の透明度(アルファチャンネル)で損失を重み付けする"
        "ので、透明な背景は学習されません。透明度のない画像は通常どおり学習します。",
    )
    scale_v_pred_loss_like_noise_pred: bool = S(
        False,
        tab=ADV,
        group="Loss",
        advanced=True,
        label="Scale v prediction loss",
        label_ja="v予測の損失をノイズ予測並みに",
        help="v-prediction models: weight the loss by snr/(snr+1) so that it behaves like the "
        "noise-prediction loss.",
        help_ja="v予測モデル用: 損失をsnr/(snr+1)で重み付けし、ノイズ予測と同じように扱います。",
    )
    v_pred_like_loss: float = S(
        0.0,
        tab=ADV,
        group="Loss",
        ge=0,
        le=10,
        advanced=True,
        label="V Pred like loss",
        label_ja="v予測風の損失",
        help="Adds this share of a v-prediction-like loss (loss / (snr/(snr+1))), which weighs the "
        "noisy timesteps more; 0.1 is a common value (0 = off).",
        help_ja="v予測風の損失(loss / (snr/(snr+1)))をこの割合で加えます。ノイズの多いタイムステップを"
        "より重視します。よく使われる値は0.1(0=なし)。",
    )
    debiased_estimation_loss: bool = S(
        False,
        tab=ADV,
        group="Loss",
        advanced=True,
        label="Debiased Estimation loss",
        label_ja="Debiased Estimation損失",
        help="Weight each sample's loss by 1/sqrt(snr) (1/(snr+1) for v-prediction), so that the "
        "nearly clean timesteps do not dominate.",
        help_ja="各サンプルの損失を1/sqrt(snr)(v予測では1/(snr+1))で重み付けし、ノイズの少ない"
        "タイムステップに偏らないようにします。",
    )

    # ---- Parameters: text encoder -------------------------------------------------------------
    stop_text_encoder_training: int = S(
        0,
        tab=PARAM,
        group="Optimizer",
        ge=0,
        le=100,
        advanced=True,
        label="Stop TE (% of total steps)",
        label_ja="テキストエンコーダの学習停止(全ステップの%)",
        help="The text-encoder LoRA stops learning after this share of the steps; the U-Net goes "
        "on (0 = train it to the end).",
        help_ja="全ステップのこの割合でテキストエンコーダのLoRAの学習を止め、U-Netだけ続けます"
        "(0=最後まで学習)。",
    )

    # ---- Advanced: memory ---------------------------------------------------------------------
    fp8_base: bool = S(
        False,
        tab=ADV,
        group="Memory",
        advanced=True,
        label="fp8 base model",
        label_ja="ベースモデルをfp8で保持",
        help="Store the frozen U-Net weights in fp8 (about half the VRAM of fp16); the LoRA still "
        "trains in higher precision. Needs an NVIDIA GPU and mixed precision fp16/bf16.",
        help_ja="固定するU-Netの重みをfp8で保持します(fp16の約半分のVRAM)。LoRAは高い精度のまま"
        "学習します。NVIDIA GPUと混合精度fp16/bf16が必要です。",
    )
