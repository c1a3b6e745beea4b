"""The settings of the first three tabs, each declared once. Key names are the Kohya GUI's (ANCHORS.md section 4).

Defaults are the Kohya GUI's except where its default is a trap: `max_train_steps` is 0
(derived from epochs) because Kohya's 1600 silently overrides the epoch count, and
`xformers` defaults to PyTorch's built-in SDPA because xformers is an optional install.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..schedule_torch import TORCH_SCHEDULERS
from .schema import setting as S

SRC, FOLD, PARAM, ADV = "Source Model", "Folders", "Parameters", "Advanced"

# Kohya's spellings; the bitsandbytes, learning-rate-free and schedule-free families are
# listed in trainer.optim_args, the class behind each name in trainer.optim.
OPTIMIZERS = ("AdamW", "AdamW8bit", "PagedAdamW8bit", "PagedAdamW32bit", "Adafactor", "Lion", "Lion8bit",
              "PagedLion8bit", "SGDNesterov", "SGDNesterov8bit", "Prodigy", "DAdaptAdam", "DAdaptation",
              "DAdaptAdamPreprint", "DAdaptAdaGrad", "DAdaptAdan", "DAdaptAdanIP", "DAdaptLion", "DAdaptSGD",
              "AdamWScheduleFree", "RAdamScheduleFree", "SGDScheduleFree", "bitsandbytes.optim.AdEMAMix8bit",
              "bitsandbytes.optim.PagedAdEMAMix8bit", "pytorch_optimizer.CAME",
              "prodigyplus.ProdigyPlusScheduleFree")
SCHEDULERS = ("constant", "constant_with_warmup", "cosine", "cosine_with_restarts",
              "linear", "polynomial", "adafactor", "cosine_with_min_lr", "inverse_sqrt",
              "warmup_stable_decay")
LORA_TYPES = ("Standard", "Kohya LoCon", "LoRA-FA", "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr",
              "LyCORIS/iA3", "LyCORIS/BOFT", "LyCORIS/Diag-OFT", "LyCORIS/DyLoRA", "LyCORIS/GLoRA",
              "LyCORIS/Native Fine-Tuning")
PRECISIONS = ("no", "fp16", "bf16")
SAVE_PRECISIONS = ("fp16", "bf16", "float")
ATTENTION = ("sdpa", "xformers", "none")


class BasicSettings(BaseModel):
    """Source Model, Folders and Parameters tabs (Advanced lives in advanced.py)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # ---- Source Model -------------------------------------------------------------
    pretrained_model_name_or_path: str = S(
        "", tab=SRC, group="Model", widget="path-any",
        label="Pretrained model name or path", label_ja="ベースモデルのパスまたは名前",
        help="The base model: a .safetensors/.ckpt checkpoint (as downloaded from CivitAI), a "
             "diffusers folder, or a Hugging Face id already in the local cache.",
        help_ja="学習の元になるモデル。.safetensors/.ckptファイル(CivitAIなどで配布されている形式)、"
                "diffusers形式のフォルダ、またはキャッシュ済みのHugging Face ID。")
    v2: bool = S(False, tab=SRC, group="Model", label="v2", label_ja="v2",
                 help="The base model is Stable Diffusion 2.x.",
                 help_ja="ベースモデルがStable Diffusion 2.x系のときにオン。")
    v_parameterization: bool = S(
        False, tab=SRC, group="Model", label="v_parameterization", label_ja="v_parameterization",
        help="The model predicts velocity (SD2.x 768-v models). It cannot be read from the weights.",
        help_ja="vパラメータ化(SD2.xの768-vモデル)。重みからは判別できないため手動で指定します。")
    sdxl: bool = S(False, tab=SRC, group="Model", label="SDXL", label_ja="SDXL",
                   help="The base model is Stable Diffusion XL.",
                   help_ja="ベースモデルがSDXLのときにオン。")
    vae: str = S("", tab=SRC, group="Model", widget="path-any", advanced=True,
                 label="VAE (optional)", label_ja="VAE(任意)",
                 help="A separate VAE to use instead of the model's own (.safetensors file or diffusers folder).",
                 help_ja="モデル内蔵のVAEの代わりに使うVAE(.safetensorsファイルまたはdiffusers形式のフォルダ)。")
    save_model_as: Literal["safetensors"] = S(
        "safetensors", tab=SRC, group="Save", label="Save trained model as",
        label_ja="保存形式", help="File format of the LoRA. safetensors loads everywhere and is safe.",
        help_ja="LoRAファイルの形式。safetensorsはどのツールでも読めて安全です。")
    save_precision: Literal[SAVE_PRECISIONS] = S(
        "fp16", tab=SRC, group="Save", label="Save precision", label_ja="保存精度",
        help="Precision of the saved weights. fp16 is the usual choice; float doubles the size.",
        help_ja="保存する重みの精度。通常はfp16。floatはサイズが2倍になります。")

    # ---- Folders ------------------------------------------------------------------
    train_data_dir: str = S(
        "", tab=FOLD, group="Folders", widget="path-dir", label="Image folder",
        label_ja="画像フォルダ",
        help="The parent folder of '<repeats>_<name>' folders, e.g. train/50_mychar/img001.png.",
        help_ja="『<繰り返し数>_<名前>』フォルダの親フォルダ。例: train/50_mychar/img001.png")
    reg_data_dir: str = S(
        "", tab=FOLD, group="Folders", widget="path-dir", label="Regularisation folder",
        label_ja="正則化画像フォルダ",
        help="Optional. Same layout as the image folder; weighted by the prior loss weight.",
        help_ja="任意。画像フォルダと同じ構成。prior loss weightで重み付けされます。")
    dataset_config: str = S(
        "", tab=FOLD, group="Folders", widget="path-file", advanced=True, label="Dataset config (TOML)",
        label_ja="データセット設定ファイル(TOML)",
        help="Optional: an sd-scripts dataset .toml listing image folders ([[datasets.subsets]] "
             "image_dir, num_repeats, class_tokens, is_reg). It replaces the image and "
             "regularisation folders; its batch size, resolution and caption options win.",
        help_ja="任意: sd-scripts形式のデータセット設定(.toml)。[[datasets.subsets]]のimage_dir・"
                "num_repeats・class_tokens・is_regで画像フォルダを指定します。画像フォルダと正則化画像"
                "フォルダの代わりに使われ、ファイル内のバッチサイズ・解像度・キャプション設定が優先されます。")
    output_dir: str = S(
        "", tab=FOLD, group="Folders", widget="path-dir", label="Output folder",
        label_ja="出力フォルダ", help="Where the LoRA files are written (created if missing).",
        help_ja="LoRAファイルの保存先(無ければ作成します)。")
    logging_dir: str = S(
        "", tab=FOLD, group="Folders", widget="path-dir", label="Logging folder",
        label_ja="ログフォルダ", help="Optional. Logs and TensorBoard files go here.",
        help_ja="任意。ログとTensorBoardのファイルの保存先。")
    output_name: str = S(
        "last", tab=FOLD, group="Folders", label="Model output name", label_ja="出力ファイル名",
        help="The LoRA is saved as <name>.safetensors (and <name>-000002.safetensors per epoch).",
        help_ja="<名前>.safetensors として保存されます(途中保存は <名前>-000002.safetensors)。")
    training_comment: str = S(
        "", tab=FOLD, group="Folders", label="Training comment", label_ja="学習コメント",
        help="Free text stored in the file's metadata (ss_training_comment).",
        help_ja="ファイルのメタデータに記録される自由なコメント。")

    # ---- Parameters: basic ----------------------------------------------------------
    train_batch_size: int = S(
        1, tab=PARAM, group="Basic", ge=1, le=256, label="Train batch size",
        label_ja="バッチサイズ",
        help="Images per step. Larger is faster per image but needs more VRAM.",
        help_ja="一度に学習する画像の枚数。大きいほど速くなりますがVRAMを多く使います。")
    epoch: int = S(1, tab=PARAM, group="Basic", ge=1, le=10000, label="Epoch",
                   label_ja="エポック数",
                   help="One epoch = every image x its repeats. 3-10 is usual for a LoRA.",
                   help_ja="1エポック=全画像×繰り返し数。LoRAなら3~10程度で十分です。")
    max_train_epochs: int = S(
        0, tab=PARAM, group="Basic", ge=0, le=10000, label="Max train epoch",
        label_ja="最大エポック数", help="If > 0, overrides Epoch.",
        help_ja="0より大きいとエポック数の代わりに使われます。")
    max_train_steps: int = S(
        0, tab=PARAM, group="Basic", ge=0, label="Max train steps", label_ja="最大ステップ数",
        help="If > 0, training stops after this many steps, whatever the epochs (as in Kohya). 0 = from epochs.",
        help_ja="0より大きいとエポック数に関係なくこのステップ数で終了します(Kohyaと同じ)。0=エポック数から計算。")
    save_every_n_epochs: int = S(
        1, tab=PARAM, group="Basic", ge=1, le=10000, label="Save every N epochs",
        label_ja="Nエポックごとに保存",
        help="Also save a LoRA every N epochs, e.g. Epoch 10 and 3 saves after 3, 6, 9 and 10 "
             "(a value at or above Epoch saves only the final file).",
        help_ja="Nエポックごとに途中のLoRAも保存。例:エポック10で3なら3,6,9,10で保存"
                "(エポック数以上なら最終ファイルのみ)。")
    caption_extension: str = S(
        ".txt", tab=PARAM, group="Basic", label="Caption Extension", label_ja="キャプションの拡張子",
        help="Extension of the caption file next to each image.",
        help_ja="画像と同じ名前のキャプションファイルの拡張子。")
    seed: int = S(42, tab=PARAM, group="Basic", ge=0, le=2**32 - 1, label="Seed",
                  label_ja="シード", help="Same seed + same settings = the same LoRA.",
                  help_ja="同じシードと設定なら同じLoRAになります。")
    mixed_precision: Literal[PRECISIONS] = S(
        "fp16", tab=PARAM, group="Basic", label="Mixed precision", label_ja="混合精度",
        help="bf16 on RTX 30/40 cards and newer, fp16 on older GPUs, no on a CPU.",
        help_ja="RTX30/40系以降はbf16、それより古いGPUはfp16、CPUではno。")
    num_cpu_threads_per_process: int = S(
        2, tab=PARAM, group="Basic", ge=1, le=256, label="Number of CPU threads per core",
        label_ja="CPUスレッド数", help="CPU threads used by each training process.",
        help_ja="学習プロセスごとに使うCPUスレッド数。")
    cache_latents: bool = S(True, tab=PARAM, group="Basic", label="Cache latents",
                            label_ja="latentをキャッシュ",
                            help="Encode every image once with the VAE before training: faster.",
                            help_ja="学習前に画像を一度だけVAEでエンコードします。高速になります。")
    cache_latents_to_disk: bool = S(
        False, tab=PARAM, group="Basic", label="Cache latents to disk",
        label_ja="latentをディスクにキャッシュ",
        help="Keep the latent cache on disk next to the images, reused by the next run.",
        help_ja="latentのキャッシュを画像の隣に保存し、次回の学習でも再利用します。")
    vae_batch_size: int = S(
        0, tab=PARAM, group="Basic", ge=0, le=256, advanced=True, label="VAE batch size",
        label_ja="VAEのバッチサイズ",
        help="Images of the same size encoded together while caching latents: faster, more VRAM. "
             "0 = one at a time (as in Kohya). The latents are the same either way (up to float "
             "rounding).",
        help_ja="latentのキャッシュ時に同じサイズの画像をまとめてエンコードする枚数。速くなりますがVRAMを"
                "多く使います。0=1枚ずつ(Kohyaと同じ)。どちらでも結果は同じです(浮動小数点の丸め誤差を除く)。")

    # ---- Parameters: optimizer ------------------------------------------------------
    optimizer: Literal[OPTIMIZERS] = S(
        "AdamW8bit", tab=PARAM, group="Optimizer", label="Optimizer", label_ja="オプティマイザ",
        help="AdamW8bit saves VRAM (the 8bit and Paged ones need an NVIDIA GPU); AdamW is 32-bit and "
             "works everywhere. Adafactor picks its own step size (LR warmup 0, scheduler 'adafactor'); "
             "Prodigy and the DAdapt ones want a learning rate of about 1. The ScheduleFree ones "
             "ignore the LR scheduler.",
        help_ja="AdamW8bitはVRAMを節約(8bit系とPaged系はNVIDIA GPUが必要)。AdamWは32bitでどこでも動きます。"
                "Adafactorは学習率を自動で調整します(ウォームアップ0、スケジューラ'adafactor')。"
                "ProdigyとDAdapt系は学習率を1前後にします。ScheduleFree系はLRスケジューラを使いません。")
    optimizer_args: str = S(
        "", tab=PARAM, group="Optimizer", advanced=True, label="Optimizer extra arguments",
        label_ja="オプティマイザの追加引数",
        help="Space-separated key=value pairs, e.g. weight_decay=0.01 betas=0.9,0.99.",
        help_ja="key=value をスペース区切りで。例: weight_decay=0.01 betas=0.9,0.99")
    learning_rate: float = S(
        1e-4, tab=PARAM, group="Optimizer", gt=0, le=1.0, label="Learning rate",
        label_ja="学習率", help="Too high is unstable, too low learns slowly. 1e-4 is a good start.",
        help_ja="大きすぎると不安定、小さすぎると学習が遅くなります。1e-4から始めるのが無難です。")
    unet_lr: float = S(1e-4, tab=PARAM, group="Optimizer", ge=0, le=1.0, label="Unet learning rate",
                       label_ja="U-Netの学習率", help="Learning rate of the U-Net LoRA. 0 = use Learning rate.",
                       help_ja="U-NetのLoRAの学習率。0なら学習率の値を使います。")
    text_encoder_lr: float = S(
        1e-4, tab=PARAM, group="Optimizer", ge=0, le=1.0, label="Text Encoder learning rate",
        label_ja="テキストエンコーダの学習率",
        help="Learning rate of the text-encoder LoRA. 0 = use Learning rate.",
        help_ja="テキストエンコーダのLoRAの学習率。0なら学習率の値を使います。")
    lr_scheduler: Literal[SCHEDULERS] = S(
        "cosine", tab=PARAM, group="Optimizer", label="LR Scheduler", label_ja="学習率スケジューラ",
        help="How the learning rate changes over the run. 'adafactor' lets the Adafactor optimizer "
             "choose it (only with Adafactor, LR warmup 0). cosine_with_min_lr and "
             "warmup_stable_decay need LR scheduler extra arguments.",
        help_ja="学習中に学習率をどう変化させるか。'adafactor'はAdafactorオプティマイザに任せます"
                "(Adafactor専用、ウォームアップ0)。cosine_with_min_lrとwarmup_stable_decayには"
                "スケジューラの追加引数が必要です。")
    lr_scheduler_args: str = S(
        "", tab=PARAM, group="Optimizer", advanced=True, label="LR scheduler extra arguments",
        label_ja="スケジューラの追加引数",
        help="Space-separated key=value pairs. cosine_with_min_lr: min_lr_rate=0.1 (or min_lr=1e-6); "
             "inverse_sqrt: timescale=100; warmup_stable_decay: num_decay_steps=200 (or 0.2 of the "
             "run), optional num_stable_steps, min_lr_ratio, decay_type; polynomial: lr_end=1e-6. "
             "With LR scheduler type: that class's arguments, e.g. T_max=1000 eta_min=0.",
        help_ja="key=value をスペース区切りで。cosine_with_min_lr: min_lr_rate=0.1(またはmin_lr=1e-6)、"
                "inverse_sqrt: timescale=100、warmup_stable_decay: num_decay_steps=200(全体の割合なら0.2)"
                "と任意でnum_stable_steps・min_lr_ratio・decay_type、polynomial: lr_end=1e-6。"
                "スケジューラのクラスを指定したときはそのクラスの引数(例: T_max=1000 eta_min=0)。")
    lr_scheduler_type: str = S(
        "", tab=PARAM, group="Optimizer", advanced=True, suggestions=("", *TORCH_SCHEDULERS),
        label="LR scheduler type (PyTorch class)",
        label_ja="スケジューラのクラス(PyTorch)",
        help="Optional: one of PyTorch's schedulers by name, e.g. CosineAnnealingLR with "
             "T_max=1000 in LR scheduler extra arguments. It then decides the whole curve: "
             "LR Scheduler and the warmup are not used (as in sd-scripts). Empty = off.",
        help_ja="任意: PyTorchのスケジューラをクラス名で指定します(例: CosineAnnealingLR、追加引数に"
                "T_max=1000)。指定すると学習率の曲線はこれだけで決まり、LR Schedulerとウォームアップは"
                "使われません(sd-scriptsと同じ)。空欄=使わない。")
    lr_warmup: int = S(10, tab=PARAM, group="Optimizer", ge=0, le=100, label="LR warmup (% of total steps)",
                       label_ja="ウォームアップ(全ステップの%)",
                       help="The learning rate rises from 0 over this share of the steps.",
                       help_ja="全ステップのうちこの割合で学習率を0から上げていきます。")
    lr_warmup_steps: int = S(0, tab=PARAM, group="Optimizer", ge=0, advanced=True,
                             label="LR warmup steps", label_ja="ウォームアップのステップ数",
                             help="If > 0, used instead of the percentage.",
                             help_ja="0より大きいと割合の代わりにこのステップ数を使います。")
    lr_scheduler_num_cycles: int = S(
        1, tab=PARAM, group="Optimizer", ge=1, le=1000, advanced=True, label="LR number of cycles",
        label_ja="リスタート回数", help="Restarts for cosine_with_restarts.",
        help_ja="cosine_with_restartsのリスタート回数。")
    lr_scheduler_power: float = S(
        1.0, tab=PARAM, group="Optimizer", gt=0, le=100, advanced=True, label="LR power",
        label_ja="polynomialの指数", help="Power of the polynomial scheduler.",
        help_ja="polynomialスケジューラの指数。")
    max_grad_norm: float = S(1.0, tab=PARAM, group="Optimizer", ge=0, le=1000, advanced=True,
                             label="Max grad norm", label_ja="勾配クリップ",
                             help="Clip gradients to this norm (0 = off).",
                             help_ja="勾配のノルムをこの値で制限します(0=なし)。")
    gradient_accumulation_steps: int = S(
        1, tab=PARAM, group="Optimizer", ge=1, le=1024, advanced=True,
        label="Gradient accumulate steps", label_ja="勾配の累積ステップ数",
        help="Update the weights every N batches: like a larger batch without the VRAM.",
        help_ja="Nバッチごとに重みを更新。VRAMを増やさずに大きなバッチと同じ効果。")

    # ---- Parameters: resolution and buckets -----------------------------------------
    max_resolution: str = S(
        "512,512", tab=PARAM, group="Resolution", label="Max resolution", label_ja="最大解像度",
        help="Training resolution 'width,height'; multiples of 64. 512,512 for SD1.5, 1024,1024 for SDXL.",
        help_ja="学習解像度『幅,高さ』(64の倍数)。SD1.5は512,512、SDXLは1024,1024。")
    enable_bucket: bool = S(True, tab=PARAM, group="Resolution", label="Enable buckets",
                            label_ja="バケットを有効化",
                            help="Train images of several aspect ratios without cropping them square.",
                            help_ja="縦横比の違う画像を正方形に切らずに学習します。")
    min_bucket_reso: int = S(256, tab=PARAM, group="Resolution", ge=64, le=8192,
                             label="Minimum bucket resolution", label_ja="最小バケット解像度",
                             help="Smallest side of a bucket.", help_ja="バケットの最小の辺。")
    max_bucket_reso: int = S(2048, tab=PARAM, group="Resolution", ge=64, le=8192,
                             label="Maximum bucket resolution", label_ja="最大バケット解像度",
                             help="Largest side of a bucket.", help_ja="バケットの最大の辺。")
    bucket_reso_steps: int = S(64, tab=PARAM, group="Resolution", ge=8, le=1024, advanced=True,
                               label="Bucket resolution steps", label_ja="バケット解像度の刻み",
                               help="Bucket sides are multiples of this.",
                               help_ja="バケットの辺はこの値の倍数になります。")
    bucket_no_upscale: bool = S(
        True, tab=PARAM, group="Resolution", label="Don't upscale bucket resolution",
        label_ja="バケットで拡大しない",
        help="Small images keep their size instead of being enlarged.",
        help_ja="小さい画像を拡大せず、そのままの大きさで学習します。")

    # ---- Parameters: network ----------------------------------------------------------
    LoRA_type: Literal[LORA_TYPES] = S(
        "Standard", tab=PARAM, group="Network", label="LoRA type", label_ja="LoRAの種類",
        help="Standard: attention and MLP layers. Kohya LoCon: also the convolutions (conv dim). "
             "LoRA-FA: Standard with the down matrix frozen (less memory for the optimizer). "
             "LyCORIS/*: the lycoris-lora algorithms (LoCon, LoHa, LoKr, iA3, BOFT, Diag-OFT, DyLoRA, "
             "GLoRA, Native Fine-Tuning = full weight changes; DoRA = 'DoRA weight decomposition' on "
             "LoCon/LoHa/LoKr), loaded by A1111, Forge and ComfyUI.",
        help_ja="Standard: 注意層とMLP層。Kohya LoCon: 畳み込み層も学習します(conv dim)。"
                "LoRA-FA: Standardのdown行列を固定(オプティマイザのメモリが減ります)。"
                "LyCORIS/*: lycoris-loraの各方式(LoCon, LoHa, LoKr, iA3, BOFT, Diag-OFT, DyLoRA, GLoRA、"
                "Native Fine-Tuningは重みの変化をそのまま保存。DoRAはLoCon/LoHa/LoKrで『DoRA』をオン)。"
                "A1111・Forge・ComfyUIで読み込めます。")
    network_dim: int = S(8, tab=PARAM, group="Network", ge=1, le=100000, label="Network Rank (Dimension)",
                         label_ja="ネットワークのランク(次元)",
                         help="Capacity of the LoRA: higher learns more detail and makes bigger files "
                              "(up to 1024; LoKr takes a huge value such as 100000 to mean a full matrix).",
                         help_ja="LoRAの表現力。大きいほど細部まで学習し、ファイルも大きくなります"
                                 "(最大1024。LoKrだけは100000のような大きな値で「分解しない行列」を意味します)。")
    network_alpha: float = S(
        1.0, tab=PARAM, group="Network", gt=0, le=1024, label="Network Alpha", label_ja="ネットワークのアルファ",
        help="Scales the LoRA by alpha/rank. Keep it <= the rank; lower needs a higher learning rate.",
        help_ja="LoRAをalpha/rankで縮小します。ランク以下にしてください。小さいほど高い学習率が必要です。")
    conv_dim: int = S(1, tab=PARAM, group="Network", ge=1, le=100000,
                      label="Convolution Rank (Dimension)", label_ja="畳み込みのランク",
                      help="Rank of the 3x3 convolution LoRA (Kohya LoCon and the LyCORIS types).",
                      help_ja="3x3畳み込み層のLoRAのランク(Kohya LoConとLyCORIS系)。")
    conv_alpha: float = S(1.0, tab=PARAM, group="Network", gt=0, le=1024,
                          label="Convolution Alpha", label_ja="畳み込みのアルファ",
                          help="Alpha of the 3x3 convolution LoRA (Kohya LoCon and the LyCORIS types).",
                          help_ja="3x3畳み込み層のLoRAのアルファ(Kohya LoConとLyCORIS系)。")
    network_dropout: float = S(0.0, tab=PARAM, group="Network", ge=0, le=1, advanced=True,
                               label="Network dropout", label_ja="ネットワークのドロップアウト",
                               help="Dropout on the LoRA's inner activations (0 = off).",
                               help_ja="LoRA内部のドロップアウト(0=なし)。")
    rank_dropout: float = S(0.0, tab=PARAM, group="Network", ge=0, le=1, advanced=True,
                            label="Rank dropout", label_ja="ランクのドロップアウト",
                            help="Drops ranks at random per sample (0 = off).",
                            help_ja="サンプルごとにランクをランダムに落とします(0=なし)。")
    module_dropout: float = S(0.0, tab=PARAM, group="Network", ge=0, le=1, advanced=True,
                              label="Module dropout", label_ja="モジュールのドロップアウト",
                              help="Skips whole LoRA modules at random for a step (0 = off).",
                              help_ja="ステップごとにLoRAモジュールをランダムに無効化します(0=なし)。")
    network_train_unet_only: bool = S(
        False, tab=PARAM, group="Network", label="Train U-Net only", label_ja="U-Netのみ学習",
        help="Leave the text encoder untouched (faster, less VRAM; captions matter less).",
        help_ja="テキストエンコーダを学習しません(速く、VRAMも少なく済みます)。")
    network_train_text_encoder_only: bool = S(
        False, tab=PARAM, group="Network", label="Train Text Encoder only",
        label_ja="テキストエンコーダのみ学習", help="Train only the text-encoder LoRA.",
        help_ja="テキストエンコーダのLoRAだけを学習します。")
    network_weights: str = S(
        "", tab=PARAM, group="Network", widget="path-file", advanced=True,
        label="Network weights", label_ja="既存のLoRAから続ける",
        help="Continue from an existing LoRA file of the same rank and type.",
        help_ja="同じランク・種類の既存LoRAファイルから学習を続けます。")
