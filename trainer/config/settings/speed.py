"""Speed settings (Advanced tab, "Speed"): opt-in ways to make each step faster.

Both are off by default: each is kept on only where scripts/bench.py shows it helps on the
user's card (BENCHMARKS.md says what each gave). `torch_compile` is sd-scripts' argument
name; channels_last has no Kohya counterpart.
"""

from __future__ import annotations

from pydantic import BaseModel

from trainer.config.schema import setting as S
from trainer.config.settings.choices import ADV

GROUP = "Speed"


class SpeedSettings(BaseModel):
    """torch.compile of the U-Net blocks, channels-last memory layout."""

    torch_compile: bool = S(
        False,
        tab=ADV,
        group=GROUP,
        advanced=True,
        label="Compile the U-Net (torch.compile)",
        label_ja="U-Netをコンパイル(torch.compile)",
        help="Compile each U-Net block once at the start: later steps run faster (often 10-30% on a "
        "GPU), but the first steps wait for the compiler (a minute or more), and each new "
        "bucket size compiles again. Needs a C++ compiler on a CPU.",
        help_ja="開始時にU-Netの各ブロックをコンパイルします。以降のステップは速くなります(GPUで10~30%程度)が、"
        "最初のステップはコンパイル待ち(1分以上)になり、バケットの大きさが変わるたびに再コンパイルします。"
        "CPUではC++コンパイラが必要です。",
    )
    channels_last: bool = S(
        False,
        tab=ADV,
        group=GROUP,
        advanced=True,
        label="Channels-last memory layout (GPU)",
        label_ja="channels-lastメモリ配置(GPU)",
        help="Store the U-Net's convolution weights and activations as NHWC, the layout tensor "
        "cores read fastest on many NVIDIA cards. No effect on a CPU.",
        help_ja="U-Netの畳み込みの重みと活性をNHWC配置で保持します。多くのNVIDIA GPUでTensorコアが"
        "最も速く読める配置です。CPUでは効果がありません。",
    )
