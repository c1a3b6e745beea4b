"""A run that will not fit its GPU is warned before any model loads (issue 13): the CLI
and trainer.api give the run `trainer.estimate.gpu_fit_warning`, which measures the run
against this machine's GPU. Here the GPU's size is made tiny; the run still trains (on the
CPU), but the warning came first and names the smallest change that fits."""

from __future__ import annotations

import threading

from tests.helpers import DataCfg, make_toy_dataset, toy_settings


def test_a_run_too_big_for_the_gpu_is_warned_before_the_model_loads(tiny_model, tmp_path, monkeypatch):
    import trainer.api

    monkeypatch.setattr("trainer.estimate.this_gpu_gib", lambda: 0.001)
    data = make_toy_dataset(tmp_path / "data", n=2)
    values = toy_settings(tiny_model("sd15"), data, tmp_path / "out", max_train_steps=1, epoch=1)
    events = []
    assert trainer.api.run_training(DataCfg(**values), events.append, threading.Event()) == 0
    kinds = [e.kind for e in events]
    warned = [
        i for i, e in enumerate(events) if e.kind == "warning" and "run out of memory" in e.data["message"]
    ]
    assert warned, [e.data for e in events if e.kind == "warning"]
    assert "this GPU has 0.0 GiB" in events[warned[0]].data["message"]
    assert warned[0] < kinds.index("started")  # before any model loaded


def test_no_warning_when_it_fits(tiny_model, tmp_path, monkeypatch):
    import trainer.api

    monkeypatch.setattr("trainer.estimate.this_gpu_gib", lambda: 24.0)
    data = make_toy_dataset(tmp_path / "data", n=2)
    values = toy_settings(tiny_model("sd15"), data, tmp_path / "out", max_train_steps=1, epoch=1)
    events = []
    assert trainer.api.run_training(DataCfg(**values), events.append, threading.Event()) == 0
    assert not [e for e in events if e.kind == "warning" and "out of memory" in e.data["message"]]
