"""SIGTERM and SIGHUP to the app stop a run like Ctrl+C: it ends after its step, saves
`<name>-stopped-<step>.safetensors` (a complete LoRA) and the app exits 0. SIGHUP comes
after the terminal the app wrote to has closed, as when its window is closed."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import threading

import pytest
from safetensors import safe_open

from tests.lora_gui.live_app import launch_chromium, need_chromium, start_app, write_demo_preset

pytestmark = [pytest.mark.browser, pytest.mark.slow]
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright not installed: pip install -e .[dev]"
)
expect = playwright_api.expect
expect.set_options(timeout=30_000)  # a busy 2-core machine answers slowly


class Terminal:
    """A pseudo-terminal for the app's output, read (and thrown away) until it closes."""

    def __init__(self) -> None:
        import pty

        self.master, self.slave = pty.openpty()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    os.read(self.master, 65536)
                except OSError:
                    return

    def close(self) -> None:
        """The window closes: writing to the terminal fails from now on."""
        if not self._stop.is_set():
            self._stop.set()
            self._reader.join(5)
            os.close(self.master)
            os.close(self.slave)


def start_training(url: str) -> None:
    """Press Start in the page and wait until the run has made a step."""
    with playwright_api.sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800}, locale="en-US")
            page.goto(url)
            page.locator("#start-training").click()
            progress = page.locator("#run-progress [data-testid='markdown']")
            expect(progress).to_contain_text(re.compile(r"Step [1-9]\d* / 5000"), timeout=240_000)
        finally:
            browser.close()


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGHUP"])
def test_a_signal_to_the_app_stops_the_run_saves_and_exits_0(tmp_path, tiny_model, demo_dataset, signum):
    need_chromium()
    if not hasattr(signal, signum):
        pytest.skip(f"no {signum} here")
    shutil.copytree(tiny_model("sd15"), tmp_path / "demo" / "model")
    shutil.copytree(demo_dataset, tmp_path / "demo" / "dataset")
    preset = write_demo_preset(tmp_path / "long.json", max_train_steps=5000, save_every_n_epochs=10000)
    terminal = Terminal() if signum == "SIGHUP" else None
    app = start_app(tmp_path, "--preset", str(preset), stdout=terminal.slave if terminal else None)
    try:
        start_training(app.url)
        if terminal is not None:
            terminal.close()
        app.proc.send_signal(getattr(signal, signum))
        code = app.proc.wait(timeout=180)
    finally:
        app.close()
        if terminal is not None:
            terminal.close()
    assert code == 0, app.output()
    out = tmp_path / "demo" / "output"
    stopped = sorted(out.glob("demo_lora-stopped-*.safetensors"))
    assert len(stopped) == 1, sorted(p.name for p in out.iterdir())
    step = int(re.search(r"-stopped-(\d+)\.safetensors$", stopped[0].name).group(1))
    assert 1 <= step < 5000
    with safe_open(str(stopped[0]), "numpy") as f:
        keys = list(f.keys())
        assert keys and all(f.get_tensor(k).size for k in keys)
    assert not (out / "demo_lora.safetensors").exists()  # it did not run to the end
    assert not list(out.glob(".*"))  # no half-written file left
