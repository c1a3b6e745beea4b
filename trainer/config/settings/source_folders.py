"""The Source Model and Folders tabs: the base model, the images, where the LoRA goes.

Key names and defaults are the Kohya GUI's (docs/ANCHORS.md section 4), except where noted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from trainer.config.schema import setting as S
from trainer.config.settings.choices import FOLD, SAVE_PRECISIONS, SRC


class SourceFolderSettings(BaseModel):
    """Source Model and Folders tabs."""

    # ---- Source Model -------------------------------------------------------------
    pretrained_model_name_or_path: str = S(
        "",
        tab=SRC,
        group="Model",
        widget="path-any",
        label="Pretrained model name or path",
        label_ja="ベースモデルのパスまたは名前",
        help="The base model: a .safetensors/.ckpt checkpoint (as downloaded from CivitAI), a "
        "diffusers folder, or a Hugging Face id (Start training in the GUI downloads it; the "
        "command line uses the local cache).",
        help_ja="学習の元になるモデル。.safetensors/.ckptファイル(CivitAIなどで配布されている形式)、"
        "diffusers形式のフォルダ、またはHugging Face ID(GUIの学習開始でダウンロードします。"
        "コマンドラインではキャッシュ済みのものを使います)。",
    )
    v2: bool = S(
        False,
        tab=SRC,
        group="Model",
        label="v2",
        label_ja="v2",
        help="The base model is Stable Diffusion 2.x.",
        help_ja="ベースモデルがStable Diffusion 2.x系のときにオン。",
    )
    v_parameterization: bool = S(
        False,
        tab=SRC,
        group="Model",
        label="v_parameterization",
        label_ja="v_parameterization",
        help="The model predicts velocity (SD2.x 768-v models). It cannot be read from the weights.",
        help_ja="vパラメータ化(SD2.xの768-vモデル)。重みからは判別できないため手動で指定します。",
    )
    sdxl: bool = S(
        False,
        tab=SRC,
        group="Model",
        label="SDXL",
        label_ja="SDXL",
        help="The base model is Stable Diffusion XL.",
        help_ja="ベースモデルがSDXLのときにオン。",
    )
    vae: str = S(
        "",
        tab=SRC,
        group="Model",
        widget="path-any",
        advanced=True,
        label="VAE (optional)",
        label_ja="VAE(任意)",
        help="A separate VAE to use instead of the model's own (.safetensors file or diffusers folder).",
        help_ja="モデル内蔵のVAEの代わりに使うVAE(.safetensorsファイルまたはdiffusers形式のフォルダ)。",
    )
    save_model_as: Literal["safetensors"] = S(
        "safetensors",
        tab=SRC,
        group="Save",
        label="Save trained model as",
        label_ja="保存形式",
        help="File format of the LoRA. safetensors loads everywhere and is safe.",
        help_ja="LoRAファイルの形式。safetensorsはどのツールでも読めて安全です。",
    )
    save_precision: Literal[SAVE_PRECISIONS] = S(
        "fp16",
        tab=SRC,
        group="Save",
        label="Save precision",
        label_ja="保存精度",
        help="Precision of the saved weights. fp16 is the usual choice; float doubles the size.",
        help_ja="保存する重みの精度。通常はfp16。floatはサイズが2倍になります。",
    )

    # ---- Folders ------------------------------------------------------------------
    train_data_dir: str = S(
        "",
        tab=FOLD,
        group="Folders",
        widget="path-dir",
        label="Image folder",
        label_ja="画像フォルダ",
        help="The parent folder of '<repeats>_<name>' folders, e.g. train/50_mychar/img001.png.",
        help_ja="『<繰り返し数>_<名前>』フォルダの親フォルダ。例: train/50_mychar/img001.png",
    )
    reg_data_dir: str = S(
        "",
        tab=FOLD,
        group="Folders",
        widget="path-dir",
        label="Regularisation folder",
        label_ja="正則化画像フォルダ",
        help="Optional. Same layout as the image folder; weighted by the prior loss weight.",
        help_ja="任意。画像フォルダと同じ構成。prior loss weightで重み付けされます。",
    )
    num_repeats: int = S(
        0,
        tab=FOLD,
        group="Folders",
        advanced=True,
        ge=0,
        le=10_000,
        label="Repeats (override)",
        label_ja="繰り返し数(上書き)",
        help="0: each image folder's repeats come from its name (50_mychar: 50). Above 0: every "
        "training folder (and dataset_config subset) is repeated this many times instead; "
        "regularisation folders keep theirs. A sweep varies it.",
        help_ja="0: 各画像フォルダの繰り返し数はフォルダ名から(50_mychar: 50)。1以上: すべての学習"
        "フォルダ(dataset_configのサブセットも)をこの回数だけ繰り返します。正則化フォルダは"
        "そのまま。スイープで変えられます。",
    )
    dataset_config: str = S(
        "",
        tab=FOLD,
        group="Folders",
        widget="path-file",
        advanced=True,
        label="Dataset config (TOML)",
        label_ja="データセット設定ファイル(TOML)",
        help="Optional: an sd-scripts dataset .toml listing image folders ([[datasets.subsets]] "
        "image_dir, num_repeats, class_tokens, is_reg). It replaces the image and "
        "regularisation folders; its batch size, resolution and caption options win.",
        help_ja="任意: sd-scripts形式のデータセット設定(.toml)。[[datasets.subsets]]のimage_dir・"
        "num_repeats・class_tokens・is_regで画像フォルダを指定します。画像フォルダと正則化画像"
        "フォルダの代わりに使われ、ファイル内のバッチサイズ・解像度・キャプション設定が優先されます。",
    )
    output_dir: str = S(
        "",
        tab=FOLD,
        group="Folders",
        widget="path-dir",
        label="Output folder",
        label_ja="出力フォルダ",
        help="Where the LoRA files are written (created if missing).",
        help_ja="LoRAファイルの保存先(無ければ作成します)。",
    )
    logging_dir: str = S(
        "",
        tab=FOLD,
        group="Folders",
        widget="path-dir",
        label="Logging folder",
        label_ja="ログフォルダ",
        help="Optional. Logs and TensorBoard files go here.",
        help_ja="任意。ログとTensorBoardのファイルの保存先。",
    )
    output_name: str = S(
        "last",
        tab=FOLD,
        group="Folders",
        label="Model output name",
        label_ja="出力ファイル名",
        help="The LoRA is saved as <name>.safetensors (and <name>-000002.safetensors per epoch).",
        help_ja="<名前>.safetensors として保存されます(途中保存は <名前>-000002.safetensors)。",
    )
    training_comment: str = S(
        "",
        tab=FOLD,
        group="Folders",
        label="Training comment",
        label_ja="学習コメント",
        help="Free text stored in the file's metadata (ss_training_comment).",
        help_ja="ファイルのメタデータに記録される自由なコメント。",
    )
