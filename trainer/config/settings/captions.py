"""The Advanced tab: the text encoder, captions, augmentation and the data loader.

Key names, defaults and meanings are the Kohya GUI's (sd-scripts' arguments).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from trainer.config.schema import setting as S
from trainer.config.settings.choices import ADV


class CaptionSettings(BaseModel):
    """Advanced tab: text encoder, captions, augmentation, data."""

    # ---- Advanced: text encoder and captions -----------------------------------------
    clip_skip: int = S(
        1,
        tab=ADV,
        group="Text encoder",
        ge=1,
        le=12,
        label="Clip skip",
        label_ja="Clip skip",
        help="Use the n-th last layer of the text encoder (2 for anime models).",
        help_ja="テキストエンコーダの後ろからn番目の層を使います(アニメ系モデルは2)。",
    )
    max_token_length: Literal[75, 150, 225] = S(
        75,
        tab=ADV,
        group="Text encoder",
        label="Max Token Length",
        label_ja="最大トークン長",
        help="Longer captions are read in chunks of 75 tokens.",
        help_ja="長いキャプションは75トークンずつ区切って読み込みます。",
    )
    cache_text_encoder_outputs: bool = S(
        False,
        tab=ADV,
        group="Text encoder",
        label="Cache text encoder outputs",
        label_ja="テキストエンコーダの出力をキャッシュ",
        help="Encode each caption once, then move the text encoder(s) off the GPU (saves VRAM, "
        "mostly for SDXL). Needs 'Train U-Net only' and fixed captions: no shuffle, no dropout.",
        help_ja="各キャプションを一度だけエンコードし、テキストエンコーダをGPUから外します(主にSDXLで"
        "VRAMを節約)。「U-Netのみ学習」が必要で、シャッフルやドロップアウトとは併用できません。",
    )
    shuffle_caption: bool = S(
        False,
        tab=ADV,
        group="Captions",
        label="Shuffle caption",
        label_ja="キャプションをシャッフル",
        help="Shuffle the comma-separated tags each time an image is seen.",
        help_ja="カンマ区切りのタグを毎回シャッフルします。",
    )
    keep_tokens: int = S(
        0,
        tab=ADV,
        group="Captions",
        ge=0,
        le=255,
        label="Keep n tokens",
        label_ja="先頭のタグを固定",
        help="The first n tags stay in place when shuffling (your trigger word).",
        help_ja="シャッフル時に先頭n個のタグを固定します(トリガーワード用)。",
    )
    keep_tokens_separator: str = S(
        "",
        tab=ADV,
        group="Captions",
        advanced=True,
        label="Keep tokens separator",
        label_ja="固定タグの区切り",
        help="A mark such as ||| in a caption: the tags before it stay in place when shuffling "
        "(instead of Keep n tokens), and after a second one the last tags too. The mark "
        "itself is removed. Empty = off.",
        help_ja="キャプション中の ||| などの区切り。シャッフル時にその前のタグを固定します"
        "(「先頭のタグを固定」の代わり)。2つ目の区切りの後ろのタグも固定されます。区切り自体は取り除かれます。空欄=なし。",
    )
    secondary_separator: str = S(
        "",
        tab=ADV,
        group="Captions",
        advanced=True,
        label="Secondary separator",
        label_ja="第2の区切り",
        help="A mark such as :: that joins words into one tag while shuffling; it becomes a "
        "comma afterwards (e.g. red hair::long hair moves as one). Empty = off.",
        help_ja="::などの区切り。シャッフル時はこれでつないだ語を1つのタグとして扱い、その後カンマに"
        "置き換えます(例: red hair::long hairはまとめて動きます)。空欄=なし。",
    )
    enable_wildcard: bool = S(
        False,
        tab=ADV,
        group="Captions",
        advanced=True,
        label="Enable wildcard",
        label_ja="ワイルドカードを使う",
        help="Each step takes one line of a multi-line caption file at random, and replaces "
        "{a|b|c} in it by one of the choices. Off: only the first line is used.",
        help_ja="複数行のキャプションファイルから毎回ランダムに1行を使い、{a|b|c}をどれか1つに置き換えます。"
        "オフなら1行目だけを使います。",
    )
    weighted_captions: bool = S(
        False,
        tab=ADV,
        group="Captions",
        advanced=True,
        label="Weighted captions",
        label_ja="キャプションの重み付け",
        help="Read A1111-style weights in captions: (red hair:1.3) counts more, [background] "
        "less, (tag) is x1.1. Off: brackets are ordinary text. Sample prompts always read them.",
        help_ja="キャプション内のA1111形式の重みを読みます: (red hair:1.3)は強く、[background]は弱く、"
        "(tag)は1.1倍。オフなら括弧は普通の文字です。サンプル用プロンプトでは常に有効です。",
    )
    caption_prefix: str = S(
        "",
        tab=ADV,
        group="Captions",
        advanced=True,
        label="Caption prefix",
        label_ja="キャプションの接頭辞",
        help="Text added before every caption.",
        help_ja="全キャプションの先頭に付ける文字列。",
    )
    caption_suffix: str = S(
        "",
        tab=ADV,
        group="Captions",
        advanced=True,
        label="Caption suffix",
        label_ja="キャプションの接尾辞",
        help="Text added after every caption.",
        help_ja="全キャプションの末尾に付ける文字列。",
    )
    caption_dropout_rate: float = S(
        0.0,
        tab=ADV,
        group="Captions",
        ge=0,
        le=1,
        label="Rate of caption dropout",
        label_ja="キャプションのドロップアウト率",
        help="Probability of training an image with an empty caption.",
        help_ja="空のキャプションで学習する確率。",
    )
    caption_dropout_every_n_epochs: int = S(
        0,
        tab=ADV,
        group="Captions",
        ge=0,
        advanced=True,
        label="Dropout caption every n epochs",
        label_ja="Nエポックごとにキャプションを外す",
        help="Every n-th epoch trains without captions (0 = off).",
        help_ja="Nエポックごとにキャプション無しで学習します(0=なし)。",
    )
    caption_tag_dropout_rate: float = S(
        0.0,
        tab=ADV,
        group="Captions",
        ge=0,
        le=1,
        advanced=True,
        label="Rate of tag dropout",
        label_ja="タグのドロップアウト率",
        help="Probability of dropping each (non-kept) tag.",
        help_ja="固定していない各タグを落とす確率。",
    )

    # ---- Advanced: augmentation and data -------------------------------------------------
    flip_aug: bool = S(
        False,
        tab=ADV,
        group="Data",
        label="Flip augmentation",
        label_ja="左右反転",
        help="Also train mirrored images (not for asymmetric subjects).",
        help_ja="左右反転した画像も学習します(左右非対称な対象には不向き)。",
    )
    color_aug: bool = S(
        False,
        tab=ADV,
        group="Data",
        label="Color augmentation",
        label_ja="色の拡張",
        help="Now and then shift the hue or gamma a little, as Kohya does (turns the "
        "latent cache off; not for subjects whose colour matters).",
        help_ja="ときどき色相やガンマを少しずらします(latentキャッシュは無効。色が重要な対象には不向き)。",
    )
    random_crop: bool = S(
        False,
        tab=ADV,
        group="Data",
        label="Random crop instead of center crop",
        label_ja="ランダムに切り抜き",
        help="Crop the overflow at random (turns the latent cache off).",
        help_ja="はみ出た部分をランダムに切り抜きます(latentキャッシュは無効)。",
    )
    prior_loss_weight: float = S(
        1.0,
        tab=ADV,
        group="Data",
        ge=0,
        le=100,
        label="Prior loss weight",
        label_ja="正則化画像の重み",
        help="Weight of the regularisation images' loss.",
        help_ja="正則化画像の損失の重み。",
    )
    max_data_loader_n_workers: int = S(
        0,
        tab=ADV,
        group="Data",
        ge=0,
        le=64,
        advanced=True,
        label="Max num workers for DataLoader",
        label_ja="DataLoaderのワーカー数",
        help="Processes that load images in the background (0 = in the main process).",
        help_ja="画像をバックグラウンドで読み込むプロセス数(0=メインプロセス)。",
    )
    persistent_data_loader_workers: bool = S(
        False,
        tab=ADV,
        group="Data",
        advanced=True,
        label="Persistent data loader",
        label_ja="ワーカーを保持",
        help="Keep the loader workers between epochs.",
        help_ja="エポック間でワーカーを終了せずに保持します。",
    )
