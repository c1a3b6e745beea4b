"""The Parameters tab: batch, epochs, saves, learning rates, the optimizer and its schedule.

`max_train_steps` defaults to 0 (derived from epochs) because Kohya's 1600 silently
overrides the epoch count.

Key names and defaults are the Kohya GUI's (docs/ANCHORS.md section 4), except where noted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from trainer.config.rules.torch_schedulers import TORCH_SCHEDULERS
from trainer.config.schema import setting as S
from trainer.config.settings.choices import OPTIMIZERS, PARAM, PRECISIONS, SCHEDULERS


class ParameterSettings(BaseModel):
    """Parameters tab: the basics and the optimizer."""

    # ---- Parameters: basic ----------------------------------------------------------
    train_batch_size: int = S(
        1,
        tab=PARAM,
        group="Basic",
        ge=1,
        le=256,
        label="Train batch size",
        label_ja="バッチサイズ",
        help="Images per step. Larger is faster per image but needs more VRAM.",
        help_ja="一度に学習する画像の枚数。大きいほど速くなりますがVRAMを多く使います。",
    )
    epoch: int = S(
        1,
        tab=PARAM,
        group="Basic",
        ge=1,
        le=10000,
        label="Epoch",
        label_ja="エポック数",
        help="One epoch = every image x its repeats. 3-10 is usual for a LoRA.",
        help_ja="1エポック=全画像×繰り返し数。LoRAなら3~10程度で十分です。",
    )
    max_train_epochs: int = S(
        0,
        tab=PARAM,
        group="Basic",
        ge=0,
        le=10000,
        label="Max train epoch",
        label_ja="最大エポック数",
        help="If > 0, overrides Epoch.",
        help_ja="0より大きいとエポック数の代わりに使われます。",
    )
    max_train_steps: int = S(
        0,
        tab=PARAM,
        group="Basic",
        ge=0,
        label="Max train steps",
        label_ja="最大ステップ数",
        help="If > 0, training stops after this many steps, whatever the epochs (as in Kohya). "
        "0 = from epochs.",
        help_ja="0より大きいとエポック数に関係なくこのステップ数で終了します(Kohyaと同じ)。0=エポック数から計算。",
    )
    save_every_n_epochs: int = S(
        1,
        tab=PARAM,
        group="Basic",
        ge=1,
        le=10000,
        label="Save every N epochs",
        label_ja="Nエポックごとに保存",
        help="Also save a LoRA every N epochs, e.g. Epoch 10 and 3 saves after 3, 6, 9 and 10 "
        "(a value at or above Epoch saves only the final file).",
        help_ja="Nエポックごとに途中のLoRAも保存。例:エポック10で3なら3,6,9,10で保存"
        "(エポック数以上なら最終ファイルのみ)。",
    )
    caption_extension: str = S(
        ".txt",
        tab=PARAM,
        group="Basic",
        label="Caption Extension",
        label_ja="キャプションの拡張子",
        help="Extension of the caption file next to each image.",
        help_ja="画像と同じ名前のキャプションファイルの拡張子。",
    )
    seed: int = S(
        42,
        tab=PARAM,
        group="Basic",
        ge=0,
        le=2**32 - 1,
        label="Seed",
        label_ja="シード",
        help="Same seed + same settings = the same LoRA.",
        help_ja="同じシードと設定なら同じLoRAになります。",
    )
    mixed_precision: Literal[PRECISIONS] = S(
        "fp16",
        tab=PARAM,
        group="Basic",
        label="Mixed precision",
        label_ja="混合精度",
        help="bf16 on RTX 30/40 cards and newer, fp16 on older GPUs, no on a CPU.",
        help_ja="RTX30/40系以降はbf16、それより古いGPUはfp16、CPUではno。",
    )
    num_cpu_threads_per_process: int = S(
        2,
        tab=PARAM,
        group="Basic",
        ge=1,
        le=256,
        label="Number of CPU threads per core",
        label_ja="CPUスレッド数",
        help="CPU threads used by each training process.",
        help_ja="学習プロセスごとに使うCPUスレッド数。",
    )
    cache_latents: bool = S(
        True,
        tab=PARAM,
        group="Basic",
        label="Cache latents",
        label_ja="latentをキャッシュ",
        help="Encode every image once with the VAE before training: faster.",
        help_ja="学習前に画像を一度だけVAEでエンコードします。高速になります。",
    )
    cache_latents_to_disk: bool = S(
        False,
        tab=PARAM,
        group="Basic",
        label="Cache latents to disk",
        label_ja="latentをディスクにキャッシュ",
        help="Keep the latent cache on disk next to the images, reused by the next run.",
        help_ja="latentのキャッシュを画像の隣に保存し、次回の学習でも再利用します。",
    )
    vae_batch_size: int = S(
        0,
        tab=PARAM,
        group="Basic",
        ge=0,
        le=256,
        advanced=True,
        label="VAE batch size",
        label_ja="VAEのバッチサイズ",
        help="Images of the same size encoded together while caching latents: faster, more VRAM. "
        "0 = one at a time (as in Kohya). The latents are the same either way (up to float "
        "rounding).",
        help_ja="latentのキャッシュ時に同じサイズの画像をまとめてエンコードする枚数。速くなりますがVRAMを"
        "多く使います。0=1枚ずつ(Kohyaと同じ)。どちらでも結果は同じです(浮動小数点の丸め誤差を除く)。",
    )

    # ---- Parameters: optimizer ------------------------------------------------------
    optimizer: Literal[OPTIMIZERS] = S(
        "AdamW8bit",
        tab=PARAM,
        group="Optimizer",
        label="Optimizer",
        label_ja="オプティマイザ",
        help="AdamW8bit saves VRAM (the 8bit and Paged ones need an NVIDIA GPU); AdamW is 32-bit and "
        "works everywhere. Adafactor picks its own step size (LR warmup 0, scheduler 'adafactor'); "
        "Prodigy and the DAdapt ones want a learning rate of about 1. The ScheduleFree ones "
        "ignore the LR scheduler.",
        help_ja="AdamW8bitはVRAMを節約(8bit系とPaged系はNVIDIA GPUが必要)。AdamWは32bitでどこでも動きます。"
        "Adafactorは学習率を自動で調整します(ウォームアップ0、スケジューラ'adafactor')。"
        "ProdigyとDAdapt系は学習率を1前後にします。ScheduleFree系はLRスケジューラを使いません。",
    )
    optimizer_args: str = S(
        "",
        tab=PARAM,
        group="Optimizer",
        advanced=True,
        label="Optimizer extra arguments",
        label_ja="オプティマイザの追加引数",
        help="Space-separated key=value pairs, e.g. weight_decay=0.01 betas=0.9,0.99.",
        help_ja="key=value をスペース区切りで。例: weight_decay=0.01 betas=0.9,0.99",
    )
    learning_rate: float = S(
        1e-4,
        tab=PARAM,
        group="Optimizer",
        gt=0,
        le=1.0,
        label="Learning rate",
        label_ja="学習率",
        help="Too high is unstable, too low learns slowly. 1e-4 is a good start.",
        help_ja="大きすぎると不安定、小さすぎると学習が遅くなります。1e-4から始めるのが無難です。",
    )
    unet_lr: float = S(
        1e-4,
        tab=PARAM,
        group="Optimizer",
        ge=0,
        le=1.0,
        label="Unet learning rate",
        label_ja="U-Netの学習率",
        help="Learning rate of the U-Net LoRA. 0 = use Learning rate.",
        help_ja="U-NetのLoRAの学習率。0なら学習率の値を使います。",
    )
    text_encoder_lr: float = S(
        1e-4,
        tab=PARAM,
        group="Optimizer",
        ge=0,
        le=1.0,
        label="Text Encoder learning rate",
        label_ja="テキストエンコーダの学習率",
        help="Learning rate of the text-encoder LoRA. 0 = use Learning rate.",
        help_ja="テキストエンコーダのLoRAの学習率。0なら学習率の値を使います。",
    )
    lr_scheduler: Literal[SCHEDULERS] = S(
        "cosine",
        tab=PARAM,
        group="Optimizer",
        label="LR Scheduler",
        label_ja="学習率スケジューラ",
        help="How the learning rate changes over the run. 'adafactor' lets the Adafactor optimizer "
        "choose it (only with Adafactor, LR warmup 0). cosine_with_min_lr and "
        "warmup_stable_decay need LR scheduler extra arguments.",
        help_ja="学習中に学習率をどう変化させるか。'adafactor'はAdafactorオプティマイザに任せます"
        "(Adafactor専用、ウォームアップ0)。cosine_with_min_lrとwarmup_stable_decayには"
        "スケジューラの追加引数が必要です。",
    )
    lr_scheduler_args: str = S(
        "",
        tab=PARAM,
        group="Optimizer",
        advanced=True,
        label="LR scheduler extra arguments",
        label_ja="スケジューラの追加引数",
        help="Space-separated key=value pairs. cosine_with_min_lr: min_lr_rate=0.1 (or min_lr=1e-6); "
        "inverse_sqrt: timescale=100; warmup_stable_decay: num_decay_steps=200 (or 0.2 of the "
        "run), optional num_stable_steps, min_lr_ratio, decay_type; polynomial: lr_end=1e-6. "
        "With LR scheduler type: that class's arguments, e.g. T_max=1000 eta_min=0.",
        help_ja="key=value をスペース区切りで。cosine_with_min_lr: min_lr_rate=0.1(またはmin_lr=1e-6)、"
        "inverse_sqrt: timescale=100、warmup_stable_decay: num_decay_steps=200(全体の割合なら0.2)"
        "と任意でnum_stable_steps・min_lr_ratio・decay_type、polynomial: lr_end=1e-6。"
        "スケジューラのクラスを指定したときはそのクラスの引数(例: T_max=1000 eta_min=0)。",
    )
    lr_scheduler_type: str = S(
        "",
        tab=PARAM,
        group="Optimizer",
        advanced=True,
        suggestions=("", *TORCH_SCHEDULERS),
        label="LR scheduler type (PyTorch class)",
        label_ja="スケジューラのクラス(PyTorch)",
        help="Optional: one of PyTorch's schedulers by name, e.g. CosineAnnealingLR with "
        "T_max=1000 in LR scheduler extra arguments. It then decides the whole curve: "
        "LR Scheduler and the warmup are not used (as in sd-scripts). Empty = off.",
        help_ja="任意: PyTorchのスケジューラをクラス名で指定します(例: CosineAnnealingLR、追加引数に"
        "T_max=1000)。指定すると学習率の曲線はこれだけで決まり、LR Schedulerとウォームアップは"
        "使われません(sd-scriptsと同じ)。空欄=使わない。",
    )
    lr_warmup: int = S(
        10,
        tab=PARAM,
        group="Optimizer",
        ge=0,
        le=100,
        label="LR warmup (% of total steps)",
        label_ja="ウォームアップ(全ステップの%)",
        help="The learning rate rises from 0 over this share of the steps.",
        help_ja="全ステップのうちこの割合で学習率を0から上げていきます。",
    )
    lr_warmup_steps: int = S(
        0,
        tab=PARAM,
        group="Optimizer",
        ge=0,
        advanced=True,
        label="LR warmup steps",
        label_ja="ウォームアップのステップ数",
        help="If > 0, used instead of the percentage.",
        help_ja="0より大きいと割合の代わりにこのステップ数を使います。",
    )
    lr_scheduler_num_cycles: int = S(
        1,
        tab=PARAM,
        group="Optimizer",
        ge=1,
        le=1000,
        advanced=True,
        label="LR number of cycles",
        label_ja="リスタート回数",
        help="Restarts for cosine_with_restarts.",
        help_ja="cosine_with_restartsのリスタート回数。",
    )
    lr_scheduler_power: float = S(
        1.0,
        tab=PARAM,
        group="Optimizer",
        gt=0,
        le=100,
        advanced=True,
        label="LR power",
        label_ja="polynomialの指数",
        help="Power of the polynomial scheduler.",
        help_ja="polynomialスケジューラの指数。",
    )
    max_grad_norm: float = S(
        1.0,
        tab=PARAM,
        group="Optimizer",
        ge=0,
        le=1000,
        advanced=True,
        label="Max grad norm",
        label_ja="勾配クリップ",
        help="Clip gradients to this norm (0 = off).",
        help_ja="勾配のノルムをこの値で制限します(0=なし)。",
    )
    gradient_accumulation_steps: int = S(
        1,
        tab=PARAM,
        group="Optimizer",
        ge=1,
        le=1024,
        advanced=True,
        label="Gradient accumulate steps",
        label_ja="勾配の累積ステップ数",
        help="Update the weights every N batches: like a larger batch without the VRAM.",
        help_ja="Nバッチごとに重みを更新。VRAMを増やさずに大きなバッチと同じ効果。",
    )
