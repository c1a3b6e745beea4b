"""The Advanced tab's core settings (text encoder, captions, data, memory, noise, metadata)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from .fields import ADV, ATTENTION
from .schema import setting as S

NOISE_OFFSET_TYPES = ("Original", "Multires")


class AdvancedSettings(BaseModel):
    """Advanced tab: text encoder, captions, data, memory, noise, metadata."""

    # ---- Advanced: text encoder and captions -----------------------------------------
    clip_skip: int = S(1, tab=ADV, group="Text encoder", ge=1, le=12, label="Clip skip",
                       label_ja="Clip skip",
                       help="Use the n-th last layer of the text encoder (2 for anime models).",
                       help_ja="テキストエンコーダの後ろからn番目の層を使います(アニメ系モデルは2)。")
    max_token_length: Literal[75, 150, 225] = S(
        75, tab=ADV, group="Text encoder", label="Max Token Length", label_ja="最大トークン長",
        help="Longer captions are read in chunks of 75 tokens.",
        help_ja="長いキャプションは75トークンずつ区切って読み込みます。")
    cache_text_encoder_outputs: bool = S(
        False, tab=ADV, group="Text encoder", label="Cache text encoder outputs",
        label_ja="テキストエンコーダの出力をキャッシュ",
        help="Encode each caption once, then move the text encoder(s) off the GPU (saves VRAM, "
             "mostly for SDXL). Needs 'Train U-Net only' and fixed captions: no shuffle, no dropout.",
        help_ja="各キャプションを一度だけエンコードし、テキストエンコーダをGPUから外します(主にSDXLで"
                "VRAMを節約)。「U-Netのみ学習」が必要で、シャッフルやドロップアウトとは併用できません。")
    shuffle_caption: bool = S(False, tab=ADV, group="Captions", label="Shuffle caption",
                              label_ja="キャプションをシャッフル",
                              help="Shuffle the comma-separated tags each time an image is seen.",
                              help_ja="カンマ区切りのタグを毎回シャッフルします。")
    keep_tokens: int = S(0, tab=ADV, group="Captions", ge=0, le=255, label="Keep n tokens",
                         label_ja="先頭のタグを固定",
                         help="The first n tags stay in place when shuffling (your trigger word).",
                         help_ja="シャッフル時に先頭n個のタグを固定します(トリガーワード用)。")
    keep_tokens_separator: str = S(
        "", tab=ADV, group="Captions", advanced=True, label="Keep tokens separator",
        label_ja="固定タグの区切り",
        help="A mark such as ||| in a caption: the tags before it stay in place when shuffling "
             "(instead of Keep n tokens), and after a second one the last tags too. The mark "
             "itself is removed. Empty = off.",
        help_ja="キャプション中の ||| などの区切り。シャッフル時にその前のタグを固定します(「先頭のタグを固定」の"
                "代わり)。2つ目の区切りの後ろのタグも固定されます。区切り自体は取り除かれます。空欄=なし。")
    secondary_separator: str = S(
        "", tab=ADV, group="Captions", advanced=True, label="Secondary separator",
        label_ja="第2の区切り",
        help="A mark such as :: that joins words into one tag while shuffling; it becomes a "
             "comma afterwards (e.g. red hair::long hair moves as one). Empty = off.",
        help_ja="::などの区切り。シャッフル時はこれでつないだ語を1つのタグとして扱い、その後カンマに"
                "置き換えます(例: red hair::long hairはまとめて動きます)。空欄=なし。")
    enable_wildcard: bool = S(
        False, tab=ADV, group="Captions", advanced=True, label="Enable wildcard",
        label_ja="ワイルドカードを使う",
        help="Each step takes one line of a multi-line caption file at random, and replaces "
             "{a|b|c} in it by one of the choices. Off: only the first line is used.",
        help_ja="複数行のキャプションファイルから毎回ランダムに1行を使い、{a|b|c}をどれか1つに置き換えます。"
                "オフなら1行目だけを使います。")
    weighted_captions: bool = S(
        False, tab=ADV, group="Captions", advanced=True, label="Weighted captions",
        label_ja="キャプションの重み付け",
        help="Read A1111-style weights in captions: (red hair:1.3) counts more, [background] "
             "less, (tag) is x1.1. Off: brackets are ordinary text. Sample prompts always read them.",
        help_ja="キャプション内のA1111形式の重みを読みます: (red hair:1.3)は強く、[background]は弱く、"
                "(tag)は1.1倍。オフなら括弧は普通の文字です。サンプル用プロンプトでは常に有効です。")
    caption_prefix: str = S("", tab=ADV, group="Captions", advanced=True, label="Caption prefix",
                            label_ja="キャプションの接頭辞", help="Text added before every caption.",
                            help_ja="全キャプションの先頭に付ける文字列。")
    caption_suffix: str = S("", tab=ADV, group="Captions", advanced=True, label="Caption suffix",
                            label_ja="キャプションの接尾辞", help="Text added after every caption.",
                            help_ja="全キャプションの末尾に付ける文字列。")
    caption_dropout_rate: float = S(
        0.0, tab=ADV, group="Captions", ge=0, le=1, label="Rate of caption dropout",
        label_ja="キャプションのドロップアウト率",
        help="Probability of training an image with an empty caption.",
        help_ja="空のキャプションで学習する確率。")
    caption_dropout_every_n_epochs: int = S(
        0, tab=ADV, group="Captions", ge=0, advanced=True, label="Dropout caption every n epochs",
        label_ja="Nエポックごとにキャプションを外す",
        help="Every n-th epoch trains without captions (0 = off).",
        help_ja="Nエポックごとにキャプション無しで学習します(0=なし)。")
    caption_tag_dropout_rate: float = S(
        0.0, tab=ADV, group="Captions", ge=0, le=1, advanced=True, label="Rate of tag dropout",
        label_ja="タグのドロップアウト率", help="Probability of dropping each (non-kept) tag.",
        help_ja="固定していない各タグを落とす確率。")

    # ---- Advanced: augmentation and data -------------------------------------------------
    flip_aug: bool = S(False, tab=ADV, group="Data", label="Flip augmentation",
                       label_ja="左右反転",
                       help="Also train mirrored images (not for asymmetric subjects).",
                       help_ja="左右反転した画像も学習します(左右非対称な対象には不向き)。")
    color_aug: bool = S(False, tab=ADV, group="Data", label="Color augmentation",
                        label_ja="色の拡張",
                        help="Now and then shift the hue or gamma a little, as Kohya does (turns the "
                             "latent cache off; not for subjects whose colour matters).",
                        help_ja="ときどき色相やガンマを少しずらします(latentキャッシュは無効。"
                                "色が重要な対象には不向き)。")
    random_crop: bool = S(False, tab=ADV, group="Data", label="Random crop instead of center crop",
                          label_ja="ランダムに切り抜き",
                          help="Crop the overflow at random (turns the latent cache off).",
                          help_ja="はみ出た部分をランダムに切り抜きます(latentキャッシュは無効)。")
    prior_loss_weight: float = S(
        1.0, tab=ADV, group="Data", ge=0, le=100, label="Prior loss weight",
        label_ja="正則化画像の重み", help="Weight of the regularisation images' loss.",
        help_ja="正則化画像の損失の重み。")
    max_data_loader_n_workers: int = S(
        0, tab=ADV, group="Data", ge=0, le=64, advanced=True, label="Max num workers for DataLoader",
        label_ja="DataLoaderのワーカー数",
        help="Processes that load images in the background (0 = in the main process).",
        help_ja="画像をバックグラウンドで読み込むプロセス数(0=メインプロセス)。")
    persistent_data_loader_workers: bool = S(
        False, tab=ADV, group="Data", advanced=True, label="Persistent data loader",
        label_ja="ワーカーを保持", help="Keep the loader workers between epochs.",
        help_ja="エポック間でワーカーを終了せずに保持します。")

    # ---- Advanced: memory and speed ------------------------------------------------------
    gradient_checkpointing: bool = S(
        False, tab=ADV, group="Memory", label="Gradient checkpointing",
        label_ja="勾配チェックポイント", help="Much less VRAM, about 20-30% slower.",
        help_ja="VRAMを大きく節約します。20~30%ほど遅くなります。")
    xformers: Literal[ATTENTION] = S(
        "sdpa", tab=ADV, group="Memory", label="CrossAttention", label_ja="CrossAttention",
        help="sdpa is PyTorch's built-in fast attention; xformers needs the optional install.",
        help_ja="sdpaはPyTorch内蔵の高速attention。xformersは別途インストールが必要です。")
    mem_eff_attn: bool = S(False, tab=ADV, group="Memory", advanced=True,
                           label="Memory efficient attention", label_ja="省メモリattention",
                           help="Force the memory-efficient attention kernel.",
                           help_ja="省メモリのattentionを使います。")
    full_fp16: bool = S(False, tab=ADV, group="Memory", advanced=True,
                        label="Full fp16 training (experimental)", label_ja="完全fp16学習(実験的)",
                        help="Keep the LoRA in fp16 too. Needs Mixed precision fp16.",
                        help_ja="LoRAもfp16で保持します。混合精度fp16が必要です。")
    full_bf16: bool = S(False, tab=ADV, group="Memory", advanced=True,
                        label="Full bf16 training", label_ja="完全bf16学習",
                        help="Keep the LoRA in bf16 too. Needs Mixed precision bf16.",
                        help_ja="LoRAもbf16で保持します。混合精度bf16が必要です。")

    # ---- Advanced: noise and loss -----------------------------------------------------------
    noise_offset_type: Literal[NOISE_OFFSET_TYPES] = S(
        "Original", tab=ADV, group="Noise", label="Noise offset type", label_ja="ノイズオフセットの種類",
        help="Original: a constant offset per channel. Multires: noise at several scales.",
        help_ja="Original: チャンネルごとの一定のずれ。Multires: 複数の解像度のノイズ。")
    noise_offset: float = S(0.0, tab=ADV, group="Noise", ge=0, le=1, label="Noise offset",
                            label_ja="ノイズオフセット",
                            help="Helps very dark or bright images (0.05-0.1 is common; 0 = off).",
                            help_ja="暗い・明るい画像の表現を助けます(0.05~0.1が一般的、0=なし)。")
    multires_noise_iterations: int = S(
        0, tab=ADV, group="Noise", ge=0, le=64, label="Multires noise iterations",
        label_ja="Multiresノイズの回数", help="6-10 is common (0 = off).",
        help_ja="6~10が一般的(0=なし)。")
    multires_noise_discount: float = S(
        0.3, tab=ADV, group="Noise", ge=0, le=1, label="Multires noise discount",
        label_ja="Multiresノイズの減衰", help="How much weaker each coarser scale is.",
        help_ja="粗い解像度ほどどれだけ弱めるか。")
    min_snr_gamma: float = S(0.0, tab=ADV, group="Noise", ge=0, le=100, label="Min SNR gamma",
                             label_ja="Min SNR gamma",
                             help="Re-weights the loss per timestep; 5 is common (0 = off).",
                             help_ja="タイムステップごとに損失を重み付けします。5が一般的(0=なし)。")

    # ---- Advanced: metadata and secrets ----------------------------------------------------
    metadata_title: str = S("", tab=ADV, group="Metadata", advanced=True, label="Metadata title",
                            label_ja="タイトル", help="Title stored in the file (modelspec.title).",
                            help_ja="ファイルに記録するタイトル。")
    metadata_author: str = S("", tab=ADV, group="Metadata", advanced=True, label="Metadata author",
                             label_ja="作者", help="Author stored in the file.",
                             help_ja="ファイルに記録する作者名。")
    metadata_description: str = S("", tab=ADV, group="Metadata", advanced=True,
                                  label="Metadata description", label_ja="説明",
                                  help="Description stored in the file.",
                                  help_ja="ファイルに記録する説明。")
    metadata_license: str = S("", tab=ADV, group="Metadata", advanced=True,
                              label="Metadata license", label_ja="ライセンス",
                              help="License stored in the file.", help_ja="ファイルに記録するライセンス。")
    metadata_tags: str = S("", tab=ADV, group="Metadata", advanced=True, label="Metadata tags",
                           label_ja="タグ", help="Comma-separated tags stored in the file.",
                           help_ja="ファイルに記録するタグ(カンマ区切り)。")
    huggingface_token: str = S("", tab=ADV, group="Metadata", advanced=True, secret=True,
                               label="Hugging Face token", label_ja="Hugging Faceトークン",
                               help="Only used to read a private model; never saved anywhere.",
                               help_ja="非公開モデルの読み込みにのみ使用。どこにも保存しません。")
