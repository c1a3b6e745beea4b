"""The Utilities tab runs the real tools: verify reports a LoRA's modules, resize writes a
smaller one and offers exactly that file for download; bad input is named, in Japanese too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gradio.utils import is_allowed_file
from safetensors.numpy import save_file

from lora_gui.app import AppOptions, make_app
from lora_gui.i18n import tab_name
from lora_gui.utilities_panel import parse_ratios
from trainer import api as engine

from .gui_fakes import FakeApi


class ToolApi(FakeApi):
    """The fake trainer, with the real Utilities."""

    run_tool = staticmethod(engine.run_tool)


def _lora(path: Path, rank: int = 4) -> Path:
    """A small Kohya-named LoRA written without torch (2 modules, rank 4)."""
    rng = np.random.default_rng(0)
    tensors = {}
    for name, (out, ins) in {
        "lora_unet_down_blocks_0_attentions_0_proj_in": (32, 32),
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (32, 32),
    }.items():
        tensors[f"{name}.lora_down.weight"] = rng.standard_normal((rank, ins)).astype(np.float16)
        tensors[f"{name}.lora_up.weight"] = rng.standard_normal((out, rank)).astype(np.float16)
        tensors[f"{name}.alpha"] = np.array(2.0, dtype=np.float16)
    save_file(tensors, str(path), metadata={"ss_network_dim": str(rank), "ss_network_alpha": "2.0"})
    return path


def test_the_tab_verifies_and_resizes_and_offers_only_the_result(tmp_path):
    app = make_app(AppOptions(lang="en", user_dir=tmp_path / "user"), api=ToolApi())
    panel = app.page.utilities
    lora = _lora(tmp_path / "in.safetensors")

    message, report, _ = panel.on_verify("en", str(lora))
    assert "modules: 2 (text encoder 1, U-Net 1" in report and "ranks: 4 x2" in report

    out = tmp_path / "small.safetensors"
    message, report, download = panel.on_resize("en", str(lora), 2, 0, "", 0.9, "", "cpu", str(out))
    assert message.startswith("✅") and out.is_file() and "rank 4 -> 2" in report
    assert download["visible"] is True and Path(download["value"]) == out
    allowed = app.blocks.allowed_paths
    assert is_allowed_file(out, blocked_paths=[], allowed_paths=allowed, created_paths=[])[0]
    assert not is_allowed_file(lora, blocked_paths=[], allowed_paths=allowed, created_paths=[])[0]
    _, report, _ = panel.on_verify("en", str(out))
    assert "ranks: 2 x2" in report


def test_bad_input_is_named_before_any_work(tmp_path):
    app = make_app(AppOptions(lang="ja", user_dir=tmp_path / "user"), api=ToolApi())
    panel = app.page.utilities
    message, _, download = panel.on_resize(
        "ja", str(tmp_path / "none.safetensors"), 2, 0, "", 0.9, "", "cpu", "x.ckpt"
    )
    assert message.startswith("⚠️") and "--model" in message and download["visible"] is False
    message, _, _ = panel.on_merge(
        "ja", "a.safetensors", "1, x", "concat", 8, "", "", str(tmp_path / "m.safetensors")
    )
    assert "--ratios" in message and "数値" in message
    message, _, _ = panel.on_merge(
        "ja", "a.safetensors", "", "svd", None, "", "", str(tmp_path / "m.safetensors")
    )
    assert "--new_rank" in message
    assert parse_ratios("1.0, 0.5", "en") == [1.0, 0.5] and parse_ratios(" ", "en") is None
    assert tab_name("Utilities", "ja") == "ユーティリティ (Utilities)"
    relabel = dict((id(c), fn) for c, fn in app.page.tr)[id(panel.m_mode)]  # the language switch
    assert relabel("en")["choices"][0] == ("concat: keep every rank (exact)", "concat")
    assert relabel("ja")["label"] == "マージの方法" and relabel("ja")["choices"][2][1] == "checkpoint"
