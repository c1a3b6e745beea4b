"""A run's failures explained for their real cause (Hardening, round two: item 8, and the
out-of-memory advice of "CUDA path" item 3)."""

from __future__ import annotations

import errno

import pytest
import torch

from trainer.config import TrainingConfig
from trainer.network.lora_file import SaveError
from trainer.run.guards import explain_failure, out_of_memory_message


def _save_failure(code: int, text: str) -> SaveError:
    try:
        raise SaveError(f"could not save out/toy.safetensors ({text})") from OSError(code, text)
    except SaveError as exc:
        return exc


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        (errno.ENOSPC, "Free some disk space"),
        (errno.EDQUOT, "Free some disk space"),
        (errno.ENAMETOOLONG, "Choose a shorter output_name (now 3 bytes)"),
        (errno.EACCES, "Choose an output folder you can write to"),
        (errno.EROFS, "Choose an output folder you can write to"),
        (errno.EIO, "Fix what stopped the write (x)"),
    ],
)
def test_save_advice_fits_the_cause(code, advice):
    cfg = TrainingConfig(output_name="toy", save_state=True)
    message, hint = explain_failure(cfg, _save_failure(code, "x"))
    assert advice in hint and "Resume set to the newest -state folder" in hint
    assert ("Free some disk space" in hint) == (code in (errno.ENOSPC, errno.EDQUOT))
    assert "unchanged" in message


def _oom_hint(monkeypatch, cuda: bool, **settings) -> str:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    cfg = TrainingConfig(mixed_precision="bf16", **settings)
    return out_of_memory_message(cfg, torch.cuda.OutOfMemoryError("CUDA out of memory"))[1]


@pytest.mark.parametrize(
    "lora_type", ["Standard", "Kohya LoCon", "LyCORIS/LoCon", "LyCORIS/LoHa", "LyCORIS/LoKr"]
)
def test_out_of_memory_advice_offers_fp8_base_where_it_works(monkeypatch, lora_type):
    assert "fp8_base" in _oom_hint(monkeypatch, True, LoRA_type=lora_type)


@pytest.mark.parametrize("lora_type", ["LyCORIS/iA3", "LyCORIS/BOFT", "LyCORIS/Native Fine-Tuning"])
def test_out_of_memory_advice_leaves_fp8_base_out_for_lycoris_types_it_refuses(monkeypatch, lora_type):
    assert "fp8_base" not in _oom_hint(monkeypatch, True, LoRA_type=lora_type)


def test_out_of_memory_advice_leaves_fp8_base_out_without_a_cuda_gpu(monkeypatch):
    assert "fp8_base" not in _oom_hint(monkeypatch, False)
