"""The Advanced tab: memory and speed, noise and loss, metadata and secrets.

Key names, defaults and meanings are the Kohya GUI's (sd-scripts' arguments). `xformers`
defaults to PyTorch's built-in SDPA because xformers is an optional install.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from trainer.config.schema import setting as S
from trainer.config.settings.choices import ADV, ATTENTION, NOISE_OFFSET_TYPES


class AdvancedSettings(BaseModel):
    """Advanced tab: memory, speed, noise, loss, metadata."""

    # ---- Advanced: memory and speed ------------------------------------------------------
    gradient_checkpointing: bool = S(
        False,
        tab=ADV,
        group="Memory",
        label="Gradient checkpointing",
        label_ja="勾配チェックポイント",
        help="Much less VRAM, about 20-30% slower.",
        help_ja="VRAMを大きく節約します。20~30%ほど遅くなります。",
    )
    xformers: Literal[ATTENTION] = S(
        "sdpa",
        tab=ADV,
        group="Memory",
        label="CrossAttention",
        label_ja="CrossAttention",
        help="sdpa is PyTorch's built-in fast attention; xformers needs the optional install.",
        help_ja="sdpaはPyTorch内蔵の高速attention。xformersは別途インストールが必要です。",
    )
    mem_eff_attn: bool = S(
        False,
        tab=ADV,
        group="Memory",
        advanced=True,
        label="Memory efficient attention",
        label_ja="省メモリattention",
        help="Run attention on PyTorch's memory-efficient kernel (in tiles, never one big "
        "matrix): less memory at high resolutions on an NVIDIA GPU. With xformers chosen, "
        "xformers already does this.",
        help_ja="attentionをPyTorchの省メモリカーネルで計算します(大きな行列を作らず分割して計算)。"
        "NVIDIA GPUで高解像度のメモリを節約します。xformers選択時はxformersが同じ働きをします。",
    )
    full_fp16: bool = S(
        False,
        tab=ADV,
        group="Memory",
        advanced=True,
        label="Full fp16 training (experimental)",
        label_ja="完全fp16学習(実験的)",
        help="Keep the LoRA in fp16 too. Needs Mixed precision fp16.",
        help_ja="LoRAもfp16で保持します。混合精度fp16が必要です。",
    )
    full_bf16: bool = S(
        False,
        tab=ADV,
        group="Memory",
        advanced=True,
        label="Full bf16 training",
        label_ja="完全bf16学習",
        help="Keep the LoRA in bf16 too. Needs Mixed precision bf16.",
        help_ja="LoRAもbf16で保持します。混合精度bf16が必要です。",
    )

    # ---- Advanced: noise and loss -----------------------------------------------------------
    noise_offset_type: Literal[NOISE_OFFSET_TYPES] = S(
        "Original",
        tab=ADV,
        group="Noise",
        label="Noise offset type",
        label_ja="ノイズオフセットの種類",
        help="Original: a constant offset per channel. Multires: noise at several scales.",
        help_ja="Original: チャンネルごとの一定のずれ。Multires: 複数の解像度のノイズ。",
    )
    noise_offset: float = S(
        0.0,
        tab=ADV,
        group="Noise",
        ge=0,
        le=1,
        label="Noise offset",
        label_ja="ノイズオフセット",
        help="Helps very dark or bright images (0.05-0.1 is common; 0 = off).",
        help_ja="暗い・明るい画像の表現を助けます(0.05~0.1が一般的、0=なし)。",
    )
    multires_noise_iterations: int = S(
        0,
        tab=ADV,
        group="Noise",
        ge=0,
        le=64,
        label="Multires noise iterations",
        label_ja="Multiresノイズの回数",
        help="6-10 is common (0 = off).",
        help_ja="6~10が一般的(0=なし)。",
    )
    multires_noise_discount: float = S(
        0.3,
        tab=ADV,
        group="Noise",
        ge=0,
        le=1,
        label="Multires noise discount",
        label_ja="Multiresノイズの減衰",
        help="How much weaker each coarser scale is.",
        help_ja="粗い解像度ほどどれだけ弱めるか。",
    )
    min_snr_gamma: float = S(
        0.0,
        tab=ADV,
        group="Noise",
        ge=0,
        le=100,
        label="Min SNR gamma",
        label_ja="Min SNR gamma",
        help="Re-weights the loss per timestep; 5 is common (0 = off).",
        help_ja="タイムステップごとに損失を重み付けします。5が一般的(0=なし)。",
    )

    # ---- Advanced: metadata and secrets ----------------------------------------------------
    metadata_title: str = S(
        "",
        tab=ADV,
        group="Metadata",
        advanced=True,
        label="Metadata title",
        label_ja="タイトル",
        help="Title stored in the file (modelspec.title).",
        help_ja="ファイルに記録するタイトル。",
    )
    sweep_values: str = S(
        "",
        tab=ADV,
        group="Metadata",
        advanced=True,
        label="Sweep values",
        label_ja="スイープの値",
        help='Set by a sweep (the preset\'s "sweep" key, run by the queue): the settings this '
        "variant varies, as JSON, stored in the file as ss_sweep. Leave empty.",
        help_ja='スイープ(プリセットの"sweep"、キューで実行)が設定します: このバリエーションで'
        "変えた設定(JSON)。ファイルにss_sweepとして記録されます。通常は空のままにします。",
    )
    metadata_author: str = S(
        "",
        tab=ADV,
        group="Metadata",
        advanced=True,
        label="Metadata author",
        label_ja="作者",
        help="Author stored in the file.",
        help_ja="ファイルに記録する作者名。",
    )
    metadata_description: str = S(
        "",
        tab=ADV,
        group="Metadata",
        advanced=True,
        label="Metadata description",
        label_ja="説明",
        help="Description stored in the file.",
        help_ja="ファイルに記録する説明。",
    )
    metadata_license: str = S(
        "",
        tab=ADV,
        group="Metadata",
        advanced=True,
        label="Metadata license",
        label_ja="ライセンス",
        help="License stored in the file.",
        help_ja="ファイルに記録するライセンス。",
    )
    metadata_tags: str = S(
        "",
        tab=ADV,
        group="Metadata",
        advanced=True,
        label="Metadata tags",
        label_ja="タグ",
        help="Comma-separated tags stored in the file.",
        help_ja="ファイルに記録するタグ(カンマ区切り)。",
    )
    huggingface_token: str = S(
        "",
        tab=ADV,
        group="Metadata",
        advanced=True,
        secret=True,
        label="Hugging Face token",
        label_ja="Hugging Faceトークン",
        help="Only used to read a private model; never saved anywhere.",
        help_ja="非公開モデルの読み込みにのみ使用。どこにも保存しません。",
    )
