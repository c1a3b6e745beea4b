"""Network options of the Parameters tab: LoRA+, block-wise learning rates, max-norm, LyCORIS.

Key names are the Kohya GUI's. Block weights are Kohya's text formats: 12 comma-separated
numbers (SD1.x/SD2.x; 9 for SDXL), or a curve name ("sine", "cosine", "linear",
"reverse_linear", "zeros") with an optional "+offset", e.g. "sine+0.5".
"""

from __future__ import annotations

from pydantic import BaseModel

from trainer.config.schema import setting as S
from trainer.config.settings.choices import PARAM

# lycoris' presets that find their layers in a diffusers U-Net and CLIP. Not offered:
# "ia3" (its name patterns match no layer) and "attn-only" (it looks for attention classes
# that diffusers' U-Net does not have, so it would train the text encoder only).
LYCORIS_PRESETS = (
    "full",
    "full-lin",
    "attn-mlp",
    "unet-only",
    "unet-transformer-only",
    "unet-convblock-only",
)


class NetworkOptionSettings(BaseModel):
    """LoRA+, block-wise learning rates, scale_weight_norms and the LyCORIS options."""

    # ---- LoRA+ ------------------------------------------------------------------------------
    loraplus_lr_ratio: float = S(
        0.0,
        tab=PARAM,
        group="LoRA+",
        ge=0,
        le=1000,
        label="LoRA+ learning rate ratio",
        label_ja="LoRA+の学習率比",
        help="LoRA+: the 'up' weights learn this many times faster than the 'down' weights; "
        "16 is the paper's value (0 = off).",
        help_ja="LoRA+: up側の重みをdown側のこの倍の学習率で学習します。論文値は16(0=なし)。",
    )
    loraplus_unet_lr_ratio: float = S(
        0.0,
        tab=PARAM,
        group="LoRA+",
        ge=0,
        le=1000,
        advanced=True,
        label="LoRA+ U-Net learning rate ratio",
        label_ja="LoRA+のU-Net学習率比",
        help="As LoRA+ ratio, for the U-Net only (0 = use the LoRA+ ratio).",
        help_ja="U-Netだけに使うLoRA+の比(0=LoRA+の学習率比を使用)。",
    )
    loraplus_text_encoder_lr_ratio: float = S(
        0.0,
        tab=PARAM,
        group="LoRA+",
        ge=0,
        le=1000,
        advanced=True,
        label="LoRA+ text encoder learning rate ratio",
        label_ja="LoRA+のテキストエンコーダ学習率比",
        help="As LoRA+ ratio, for the text encoder only (0 = use the LoRA+ ratio).",
        help_ja="テキストエンコーダだけに使うLoRA+の比(0=LoRA+の学習率比を使用)。",
    )

    # ---- Max-norm regularisation ----------------------------------------------------------------
    scale_weight_norms: float = S(
        0.0,
        tab=PARAM,
        group="Network",
        ge=0,
        le=100,
        advanced=True,
        label="Scale weight norms",
        label_ja="重みのノルムを制限",
        help="After each step, shrink any LoRA module whose weight change has a norm above this; "
        "1 is a common value. Keeps a LoRA from overpowering other LoRAs (0 = off).",
        help_ja="各ステップの後、重みの変化のノルムがこの値を超えるモジュールを縮めます。1が一般的。"
        "他のLoRAと併用しやすくなります(0=なし)。",
    )

    # ---- Block-wise learning rates (Standard / Kohya LoCon) ----------------------------------
    down_lr_weight: str = S(
        "",
        tab=PARAM,
        group="Block LR",
        advanced=True,
        label="Down LR weights",
        label_ja="Down側の学習率の重み",
        help="Learning-rate weight of each U-Net down block IN00..IN11 (SDXL IN00..IN08): 12 numbers "
        "'0,0,0,0,0,0,1,1,1,1,1,1', or sine / cosine / linear / reverse_linear / zeros "
        "with an optional '+0.5'. Empty = 1 everywhere.",
        help_ja="U-Netのdownブロック(IN00~IN11、SDXLはIN00~IN08)ごとの学習率の重み: 12個の数値、"
        "またはsine / cosine / linear / reverse_linear / zeros(『+0.5』も可)。空=すべて1。",
    )
    mid_lr_weight: str = S(
        "",
        tab=PARAM,
        group="Block LR",
        advanced=True,
        label="Mid LR weights",
        label_ja="Mid側の学習率の重み",
        help="Learning-rate weight of the U-Net middle block, one number. Empty = 1.",
        help_ja="U-Netの中間ブロックの学習率の重み(数値1つ)。空=1。",
    )
    up_lr_weight: str = S(
        "",
        tab=PARAM,
        group="Block LR",
        advanced=True,
        label="Up LR weights",
        label_ja="Up側の学習率の重み",
        help="Learning-rate weight of each U-Net up block OUT00..OUT11 (SDXL OUT00..OUT08), in the "
        "same formats as Down LR weights. Empty = 1 everywhere.",
        help_ja="U-Netのupブロック(OUT00~OUT11、SDXLはOUT00~OUT08)ごとの学習率の重み。"
        "書式はDown側と同じ。空=すべて1。",
    )
    block_lr_zero_threshold: float = S(
        0.0,
        tab=PARAM,
        group="Block LR",
        ge=0,
        le=100,
        advanced=True,
        label="Blocks LR zero threshold",
        label_ja="学習しないブロックのしきい値",
        help="Blocks whose weight is at or below this are not trained at all (0 = only weight 0).",
        help_ja="重みがこの値以下のブロックは学習しません(0=重み0のブロックのみ)。",
    )

    # ---- LyCORIS --------------------------------------------------------------------------------
    LyCORIS_preset: str = S(
        "full",
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        suggestions=LYCORIS_PRESETS,
        label="LyCORIS Preset",
        label_ja="LyCORISのプリセット",
        help="Which layers a LyCORIS network trains: full (attention, MLP, convolutions), "
        "full-lin (no 3x3 convolutions), attn-mlp, unet-only, ..., or the path of a LyCORIS "
        "preset .toml file (unet_target_module, unet_target_name, enable_conv, ...).",
        help_ja="LyCORISで学習する層: full(注意・MLP・畳み込み)、full-lin(3x3畳み込みなし)、"
        "attn-mlp、unet-onlyなど。LyCORISのプリセット.tomlファイルのパスも指定できます"
        "(unet_target_module、unet_target_name、enable_convなど)。",
    )
    dora_wd: bool = S(
        False,
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        label="DoRA Weight Decompose",
        label_ja="DoRA(重み分解)",
        help="DoRA: learn each weight's magnitude and direction separately (LyCORIS LoCon, LoHa, "
        "LoKr). Often closer to full fine-tuning; a bit slower.",
        help_ja="DoRA: 重みの大きさと向きを分けて学習します(LyCORISのLoCon・LoHa・LoKr)。"
        "フルファインチューニングに近い結果になりやすく、少し遅くなります。",
    )
    factor: int = S(
        -1,
        tab=PARAM,
        group="LyCORIS",
        ge=-1,
        le=1024,
        advanced=True,
        label="LoKr factor",
        label_ja="LoKrのfactor",
        help="LoKr splits each weight into a Kronecker product with this factor; -1 = as balanced "
        "as possible (smallest file), larger = more capacity.",
        help_ja="LoKrは重みをこのfactorでクロネッカー積に分解します。-1=最も均等(最小のファイル)、"
        "大きいほど表現力が増えます。",
    )
    decompose_both: bool = S(
        False,
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        label="LoKr decompose both",
        label_ja="LoKrで両方を分解",
        help="LoKr: make both Kronecker factors low-rank (smaller file).",
        help_ja="LoKr: クロネッカー積の両方の因子を低ランク化します(ファイルが小さくなります)。",
    )
    use_tucker: bool = S(
        False,
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        label="Use Tucker decomposition",
        label_ja="Tucker分解を使う",
        help="Decompose 3x3 convolutions with Tucker (CP) decomposition: fewer parameters.",
        help_ja="3x3畳み込みをTucker(CP)分解します。パラメータが減ります。",
    )
    use_scalar: bool = S(
        False,
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        label="Use scalar",
        label_ja="スカラーを使う",
        help="Train an extra scalar per module (starts at 0), so both LoRA halves can start random.",
        help_ja="モジュールごとに追加のスカラー(初期値0)を学習し、両側の重みをランダムに初期化できます。",
    )
    train_norm: bool = S(
        False,
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        label="Train Norm",
        label_ja="正規化層も学習",
        help="Also train the normalisation layers (LayerNorm / GroupNorm) with LyCORIS.",
        help_ja="LyCORISで正規化層(LayerNorm / GroupNorm)も学習します。",
    )
    use_cp: bool = S(
        False,
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        label="Use CP decomposition",
        label_ja="CP分解を使う",
        help="LoKr: decompose 3x3 convolutions with CP (Tucker) decomposition, as 'Use Tucker "
        "decomposition' does (either one turns it on).",
        help_ja="LoKr: 3x3畳み込みをCP(Tucker)分解します。『Tucker分解を使う』と同じ働きで、"
        "どちらか一方をオンにすれば有効です。",
    )
    train_on_input: bool = S(
        False,
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        label="iA3 train on input",
        label_ja="iA3で入力側を学習",
        help="iA3: scale what goes into each layer (on) instead of what comes out of it (off, "
        "lycoris' default). The Kohya GUI ticks this box, but lycoris' Kohya entry point "
        "does not read it, so Kohya itself trains the output side.",
        help_ja="iA3: 各層の出力ではなく入力をスケールします(オフ=出力側、lycorisの既定)。"
        "Kohya GUIではオンが既定ですが、lycorisのKohya用入口はこの値を読まないため、"
        "Kohyaでは実際には出力側を学習しています。",
    )
    rank_dropout_scale: bool = S(
        False,
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        label="Rank dropout scale",
        label_ja="ランクのドロップアウトを補正",
        help="With rank dropout: rescale what is kept so the module's average strength stays the "
        "same (LyCORIS LoCon, LoHa, LoKr, BOFT, Diag-OFT, GLoRA, Native Fine-Tuning).",
        help_ja="ランクのドロップアウト使用時、残った部分を補正してモジュールの平均的な強さを保ちます"
        "(LyCORISのLoCon・LoHa・LoKr・BOFT・Diag-OFT・GLoRA・Native Fine-Tuning)。",
    )
    bypass_mode: bool = S(
        False,
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        label="Bypass mode",
        label_ja="バイパスモード",
        help="Add the LyCORIS output beside the layer instead of changing its weight (LoCon, LoHa, "
        "LoKr); meant for 8-bit / 4-bit quantised layers (QLyCORIS).",
        help_ja="層の重みを書き換えず、LyCORISの出力を横に足します(LoCon・LoHa・LoKr)。"
        "8bit / 4bit量子化した層向けです(QLyCORIS)。",
    )
    constrain: float = S(
        0.0,
        tab=PARAM,
        group="LyCORIS",
        ge=0,
        le=100,
        advanced=True,
        label="Constrain OFT",
        label_ja="OFTの制約",
        help="Diag-OFT: cap the size of each rotation so the model cannot drift far (0 = no cap).",
        help_ja="Diag-OFT: 各回転の大きさに上限を設け、元のモデルから離れすぎないようにします(0=上限なし)。",
    )
    rescaled: bool = S(
        False,
        tab=PARAM,
        group="LyCORIS",
        advanced=True,
        label="Rescaled OFT",
        label_ja="OFTのスケールも学習",
        help="Diag-OFT: also learn a scale per output channel on top of the rotation.",
        help_ja="Diag-OFT: 回転に加えて、出力チャンネルごとのスケールも学習します。",
    )
    unit: int = S(
        1,
        tab=PARAM,
        group="LyCORIS",
        ge=1,
        le=64,
        advanced=True,
        label="DyLoRA Unit / Block size",
        label_ja="DyLoRAの単位(ブロックサイズ)",
        help="DyLoRA trains ranks in steps of this size, so the file works when cut to any multiple "
        "of it. The rank (and conv rank) must be a multiple of it.",
        help_ja="DyLoRAはこの単位ごとにランクを学習するので、ファイルをこの倍数のランクに切り詰めても"
        "使えます。ランク(と畳み込みのランク)はこの倍数にしてください。",
    )

    # ---- Ranks per U-Net block (Standard / Kohya LoCon) ---------------------------------------
    block_dims: str = S(
        "",
        tab=PARAM,
        group="Network",
        advanced=True,
        label="Block dims",
        label_ja="ブロックごとのランク",
        help="Rank of each U-Net block: 25 comma-separated whole numbers IN00-IN11, MID, OUT00-OUT11 "
        "(SDXL: 23). 0 = no LoRA in that block. Empty = the network rank everywhere.",
        help_ja="U-Netのブロックごとのランク: カンマ区切りの整数25個(IN00~IN11、MID、OUT00~OUT11。"
        "SDXLは23個)。0のブロックにはLoRAを作りません。空=すべてネットワークのランク。",
    )
    block_alphas: str = S(
        "",
        tab=PARAM,
        group="Network",
        advanced=True,
        label="Block alphas",
        label_ja="ブロックごとのアルファ",
        help="Alpha of each U-Net block, 25 numbers as for Block dims (SDXL: 23). Empty = the "
        "network alpha. Used with Block dims or block learning-rate weights (as in Kohya).",
        help_ja="U-Netのブロックごとのアルファ。ブロックごとのランクと同じく25個(SDXLは23個)。"
        "空=ネットワークのアルファ。ブロックごとのランクか学習率の重みと一緒に使います"
        "(Kohyaと同じ)。",
    )
    conv_block_dims: str = S(
        "",
        tab=PARAM,
        group="Network",
        advanced=True,
        label="Conv dims",
        label_ja="ブロックごとの畳み込みランク",
        help="Rank of the 3x3 convolutions in each U-Net block, 25 numbers (SDXL: 23); this also "
        "gives Standard LoRA convolution layers. Used with Block dims or block learning-rate "
        "weights (as in Kohya).",
        help_ja="U-Netのブロックごとの3x3畳み込みのランク。25個(SDXLは23個)。Standardでも畳み込み層に"
        "LoRAを作ります。ブロックごとのランクか学習率の重みと一緒に使います(Kohyaと同じ)。",
    )
    conv_block_alphas: str = S(
        "",
        tab=PARAM,
        group="Network",
        advanced=True,
        label="Conv alphas",
        label_ja="ブロックごとの畳み込みアルファ",
        help="Alpha of the 3x3 convolutions in each U-Net block, 25 numbers (SDXL: 23). Empty = "
        "the convolution alpha (Kohya LoCon) or 1.",
        help_ja="U-Netのブロックごとの3x3畳み込みのアルファ。25個(SDXLは23個)。"
        "空=畳み込みのアルファ(Kohya LoCon)または1。",
    )
    dim_from_weights: bool = S(
        False,
        tab=PARAM,
        group="Network",
        advanced=True,
        label="DIM from weights",
        label_ja="ランクを重みファイルから決める",
        help="Take each module's rank and alpha from the Network weights file instead of the "
        "rank and alpha settings (Standard / Kohya LoCon).",
        help_ja="ランクとアルファを設定値ではなく『既存のLoRAから続ける』のファイルから"
        "モジュールごとに読み取ります(Standard / Kohya LoCon)。",
    )
