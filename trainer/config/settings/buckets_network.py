"""The Parameters tab: resolution, buckets and the network (LoRA type, rank, alpha).

Key names and defaults are the Kohya GUI's (docs/ANCHORS.md section 4), except where noted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from trainer.config.schema import setting as S
from trainer.config.settings.choices import LORA_TYPES, PARAM


class BucketNetworkSettings(BaseModel):
    """Parameters tab: resolution, buckets and the network."""

    # ---- Parameters: resolution and buckets -----------------------------------------
    max_resolution: str = S(
        "512,512",
        tab=PARAM,
        group="Resolution",
        label="Max resolution",
        label_ja="最大解像度",
        help="Training resolution 'width,height'; multiples of 64. 512,512 for SD1.5, 1024,1024 for SDXL.",
        help_ja="学習解像度『幅,高さ』(64の倍数)。SD1.5は512,512、SDXLは1024,1024。",
    )
    enable_bucket: bool = S(
        True,
        tab=PARAM,
        group="Resolution",
        label="Enable buckets",
        label_ja="バケットを有効化",
        help="Train images of several aspect ratios without cropping them square.",
        help_ja="縦横比の違う画像を正方形に切らずに学習します。",
    )
    min_bucket_reso: int = S(
        256,
        tab=PARAM,
        group="Resolution",
        ge=64,
        le=8192,
        label="Minimum bucket resolution",
        label_ja="最小バケット解像度",
        help="Smallest side of a bucket.",
        help_ja="バケットの最小の辺。",
    )
    max_bucket_reso: int = S(
        2048,
        tab=PARAM,
        group="Resolution",
        ge=64,
        le=8192,
        label="Maximum bucket resolution",
        label_ja="最大バケット解像度",
        help="Largest side of a bucket.",
        help_ja="バケットの最大の辺。",
    )
    bucket_reso_steps: int = S(
        64,
        tab=PARAM,
        group="Resolution",
        ge=8,
        le=1024,
        advanced=True,
        label="Bucket resolution steps",
        label_ja="バケット解像度の刻み",
        help="Bucket sides are multiples of this.",
        help_ja="バケットの辺はこの値の倍数になります。",
    )
    bucket_no_upscale: bool = S(
        True,
        tab=PARAM,
        group="Resolution",
        label="Don't upscale bucket resolution",
        label_ja="バケットで拡大しない",
        help="Small images keep their size instead of being enlarged.",
        help_ja="小さい画像を拡大せず、そのままの大きさで学習します。",
    )

    # ---- Parameters: network ----------------------------------------------------------
    LoRA_type: Literal[LORA_TYPES] = S(
        "Standard",
        tab=PARAM,
        group="Network",
        label="LoRA type",
        label_ja="LoRAの種類",
        help="Standard: attention and MLP layers. Kohya LoCon: also the convolutions (conv dim). "
        "LoRA-FA: Standard with the down matrix frozen (less memory for the optimizer). "
        "LyCORIS/*: the lycoris-lora algorithms (LoCon, LoHa, LoKr, iA3, BOFT, Diag-OFT, DyLoRA, "
        "GLoRA, Native Fine-Tuning = full weight changes; DoRA = 'DoRA weight decomposition' on "
        "LoCon/LoHa/LoKr), loaded by A1111, Forge and ComfyUI.",
        help_ja="Standard: 注意層とMLP層。Kohya LoCon: 畳み込み層も学習します(conv dim)。"
        "LoRA-FA: Standardのdown行列を固定(オプティマイザのメモリが減ります)。"
        "LyCORIS/*: lycoris-loraの各方式(LoCon, LoHa, LoKr, iA3, BOFT, Diag-OFT, DyLoRA, GLoRA、"
        "Native Fine-Tuningは重みの変化をそのまま保存。DoRAはLoCon/LoHa/LoKrで『DoRA』をオン)。"
        "A1111・Forge・ComfyUIで読み込めます。",
    )
    network_dim: int = S(
        8,
        tab=PARAM,
        group="Network",
        ge=1,
        le=100000,
        label="Network Rank (Dimension)",
        label_ja="ネットワークのランク(次元)",
        help="Capacity of the LoRA: higher learns more detail and makes bigger files "
        "(up to 1024; LoKr takes a huge value such as 100000 to mean a full matrix).",
        help_ja="LoRAの表現力。大きいほど細部まで学習し、ファイルも大きくなります"
        "(最大1024。LoKrだけは100000のような大きな値で「分解しない行列」を意味します)。",
    )
    network_alpha: float = S(
        1.0,
        tab=PARAM,
        group="Network",
        gt=0,
        le=1024,
        label="Network Alpha",
        label_ja="ネットワークのアルファ",
        help="Scales the LoRA by alpha/rank. Keep it <= the rank; lower needs a higher learning rate.",
        help_ja="LoRAをalpha/rankで縮小します。ランク以下にしてください。小さいほど高い学習率が必要です。",
    )
    conv_dim: int = S(
        1,
        tab=PARAM,
        group="Network",
        ge=1,
        le=100000,
        label="Convolution Rank (Dimension)",
        label_ja="畳み込みのランク",
        help="Rank of the 3x3 convolution LoRA (Kohya LoCon and the LyCORIS types).",
        help_ja="3x3畳み込み層のLoRAのランク(Kohya LoConとLyCORIS系)。",
    )
    conv_alpha: float = S(
        1.0,
        tab=PARAM,
        group="Network",
        gt=0,
        le=1024,
        label="Convolution Alpha",
        label_ja="畳み込みのアルファ",
        help="Alpha of the 3x3 convolution LoRA (Kohya LoCon and the LyCORIS types).",
        help_ja="3x3畳み込み層のLoRAのアルファ(Kohya LoConとLyCORIS系)。",
    )
    network_dropout: float = S(
        0.0,
        tab=PARAM,
        group="Network",
        ge=0,
        le=1,
        advanced=True,
        label="Network dropout",
        label_ja="ネットワークのドロップアウト",
        help="Dropout on the LoRA's inner activations (0 = off).",
        help_ja="LoRA内部のドロップアウト(0=なし)。",
    )
    rank_dropout: float = S(
        0.0,
        tab=PARAM,
        group="Network",
        ge=0,
        le=1,
        advanced=True,
        label="Rank dropout",
        label_ja="ランクのドロップアウト",
        help="Drops ranks at random per sample (0 = off).",
        help_ja="サンプルごとにランクをランダムに落とします(0=なし)。",
    )
    module_dropout: float = S(
        0.0,
        tab=PARAM,
        group="Network",
        ge=0,
        le=1,
        advanced=True,
        label="Module dropout",
        label_ja="モジュールのドロップアウト",
        help="Skips whole LoRA modules at random for a step (0 = off).",
        help_ja="ステップごとにLoRAモジュールをランダムに無効化します(0=なし)。",
    )
    network_train_unet_only: bool = S(
        False,
        tab=PARAM,
        group="Network",
        label="Train U-Net only",
        label_ja="U-Netのみ学習",
        help="Leave the text encoder untouched (faster, less VRAM; captions matter less).",
        help_ja="テキストエンコーダを学習しません(速く、VRAMも少なく済みます)。",
    )
    network_train_text_encoder_only: bool = S(
        False,
        tab=PARAM,
        group="Network",
        label="Train Text Encoder only",
        label_ja="テキストエンコーダのみ学習",
        help="Train only the text-encoder LoRA.",
        help_ja="テキストエンコーダのLoRAだけを学習します。",
    )
    network_weights: str = S(
        "",
        tab=PARAM,
        group="Network",
        widget="path-file",
        advanced=True,
        label="Network weights",
        label_ja="既存のLoRAから続ける",
        help="Continue from an existing LoRA file of the same rank and type.",
        help_ja="同じランク・種類の既存LoRAファイルから学習を続けます。",
    )
