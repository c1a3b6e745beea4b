"""Several GPUs: how Start launches the run (Advanced tab, "Several GPUs").

Kohya GUI key names (`num_processes`, `gpu_ids`, `main_process_port`), so a kohya_ss
preset's "Accelerate launch" settings keep working. With more than one process, the GUI
and `python -m trainer` start `accelerate launch` themselves, from an argument list
(`trainer.launch`); under an `accelerate launch` a user started, these are not used.
"""

from __future__ import annotations

from pydantic import BaseModel

from trainer.config.schema import setting as S
from trainer.config.settings.choices import ADV

GROUP = "Several GPUs"


class LaunchSettings(BaseModel):
    """Advanced tab: data-parallel training on several GPUs of one machine."""

    num_processes: int = S(
        1,
        tab=ADV,
        group=GROUP,
        ge=1,
        le=64,
        advanced=True,
        label="Number of processes (GPUs)",
        label_ja="プロセス数(GPU数)",
        help="1 trains in this process. 2 or more starts one process per GPU with accelerate; "
        "each GPU takes its own batch, so the effective batch is batch size x processes.",
        help_ja="1ならこのプロセスで学習します。2以上ならGPUごとに1プロセスをaccelerateで起動します。"
        "各GPUがそれぞれバッチを処理するので、実効バッチ=バッチサイズ×プロセス数です。",
    )
    gpu_ids: str = S(
        "",
        tab=ADV,
        group=GROUP,
        advanced=True,
        label="GPU IDs",
        label_ja="使用するGPUのID",
        help="Which GPUs to use, comma-separated, e.g. 0,1 (empty = the first N).",
        help_ja="使うGPUの番号をカンマ区切りで(例: 0,1)。空なら先頭からN枚。",
    )
    main_process_port: int = S(
        0,
        tab=ADV,
        group=GROUP,
        ge=0,
        le=65535,
        advanced=True,
        label="Main process port",
        label_ja="メインプロセスのポート",
        help="The local port the processes talk through (0 = accelerate's default, 29500); "
        "change it to run two trainings at once.",
        help_ja="プロセス間通信に使うローカルポート(0=accelerateの既定値29500)。"
        "2つの学習を同時に動かすときに変えます。",
    )
