"""The run queue and the comparison grid on the page: "Add to queue" beside Start training,
a Queue accordion (a sweep field, the entries with their state and files, run, stop after
the current run, reorder, remove) and a Comparison grid accordion.

The queue is the engine's file (`trainer.api.queue_*`, the one `python -m trainer queue`
uses, in the app's settings folder); the page runs it in a thread of the app
(`QueueWorker`) and reads the file to show it. `page` is the lora_gui.app.Page.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from lora_gui.i18n import t
from lora_gui.values import md_text, problems_markdown, validate_form
from trainer.config import ConfigError, preset_dict

Updates = dict[Any, Any]
PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


class QueueWorker:
    """Runs the queue file in a background thread; one at a time."""

    def __init__(self, api: Any, path: Path):
        self.api, self.path = api, path
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()
        self.error = ""

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> bool:
        if self.running():
            return False
        self.stop.clear()
        self.error = ""

        def work() -> None:
            try:
                self.api.run_queue(self.path, lambda event: None, self.stop)
            except Exception as exc:  # noqa: BLE001 - shown on the page
                self.error = str(exc)

        self.thread = threading.Thread(target=work, name="lora-queue", daemon=True)
        self.thread.start()
        return True


def _entry_cell(entry: Any, lang: str) -> str:
    parts = [md_text(Path(p).name) for p in entry.outputs]
    if entry.note:
        parts.append(md_text(entry.note))
    if entry.message:
        parts.append("⚠️ " + md_text(entry.message.replace("\n", " ")))
    return "<br>".join(parts)


def queue_markdown(queue: Any, lang: str) -> str:
    """The queue as a Markdown table: number, run, state, its files or message."""
    if not queue.entries:
        return t("queue.empty", lang)
    head = [t(f"queue.col.{c}", lang) for c in ("id", "name", "state", "files")]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|"]
    for e in queue.entries:
        state = t(f"queue.state.{e.state}", lang)
        lines.append(f"| {e.id} | {md_text(e.name)} | {state} | {_entry_cell(e, lang)} |")
    if queue.stop_after_current:
        lines.append("\n" + t("queue.stops_after", lang))
    return "\n".join(lines)


class QueuePanel:
    def __init__(self, page: Any):
        self.p = page
        self.path = Path(page.opt.settings_dir) / "queue.json"
        self.worker = QueueWorker(page.c.api, self.path)

    # ---- layout -------------------------------------------------------------------------
    def render_add(self, lg: str) -> None:
        """The "Add to queue" button (inside the row of Start training)."""
        self.add_btn = self.p._tr(
            gr.Button(t("queue.add", lg), elem_id="queue-add"), lambda x: {"value": t("queue.add", x)}
        )

    def render(self, lg: str) -> None:
        tr = self.p._tr
        with tr(
            gr.Accordion(t("queue.title", lg), open=False, elem_id="queue-panel"), self._label("queue.title")
        ):
            self.sweep = tr(
                gr.Textbox(label=t("queue.sweep", lg), info=t("queue.sweep.info", lg), elem_id="queue-sweep"),
                lambda x: {"label": t("queue.sweep", x), "info": t("queue.sweep.info", x)},
            )
            self.table = gr.Markdown(self._table(lg), elem_id="queue-table")
            with gr.Row():
                self.run_btn = tr(
                    gr.Button(t("queue.run", lg), elem_id="queue-run"), self._value("queue.run")
                )
                self.stop_btn = tr(
                    gr.Button(t("queue.stop_after", lg), elem_id="queue-stop"),
                    self._value("queue.stop_after"),
                )
                self.refresh_btn = tr(
                    gr.Button(t("queue.refresh", lg), elem_id="queue-refresh"), self._value("queue.refresh")
                )
            with gr.Row(equal_height=True):
                self.entry = tr(
                    gr.Number(1, label=t("queue.entry", lg), precision=0, minimum=1, elem_id="queue-entry"),
                    self._label("queue.entry"),
                )
                self.move = {}
                for action in ("up", "down", "remove"):
                    key = f"queue.{action}"
                    self.move[action] = tr(gr.Button(t(key, lg), elem_id=f"queue-{action}"), self._value(key))
            self.message = gr.Markdown("", elem_id="queue-message")
            self.timer = gr.Timer(2.0, active=False)
        with tr(
            gr.Accordion(t("grid.title", lg), open=False, elem_id="grid-panel"), self._label("grid.title")
        ):
            self.loras = tr(
                gr.Textbox(
                    label=t("grid.loras", lg), info=t("grid.loras.info", lg), lines=3, elem_id="grid-loras"
                ),
                lambda x: {"label": t("grid.loras", x), "info": t("grid.loras.info", x)},
            )
            self.prompts = tr(
                gr.Textbox(label=t("grid.prompts", lg), lines=2, elem_id="grid-prompts"),
                self._label("grid.prompts"),
            )
            with gr.Row():
                self.weights = tr(
                    gr.Textbox("0.6 0.8 1.0", label=t("grid.weights", lg), elem_id="grid-weights"),
                    self._label("grid.weights"),
                )
                self.seed = tr(
                    gr.Number(1, label=t("grid.seed", lg), precision=0, elem_id="grid-seed"),
                    self._label("grid.seed"),
                )
                self.steps = tr(
                    gr.Number(20, label=t("grid.steps", lg), precision=0, minimum=1, elem_id="grid-steps"),
                    self._label("grid.steps"),
                )
                self.size = tr(
                    gr.Textbox("", label=t("grid.size", lg), elem_id="grid-size"), self._label("grid.size")
                )
            self.render_btn = tr(
                gr.Button(t("grid.render", lg), elem_id="grid-render"), self._value("grid.render")
            )
            self.grid_msg = gr.Markdown("", elem_id="grid-message")
            self.image = tr(
                gr.Image(label=t("grid.image", lg), interactive=False, elem_id="grid-image"),
                self._label("grid.image"),
            )
            self.download = tr(
                gr.File(label=t("grid.file", lg), interactive=False, elem_id="grid-file"),
                self._label("grid.file"),
            )

    @staticmethod
    def _label(key: str):
        return lambda x: {"label": t(key, x)}

    @staticmethod
    def _value(key: str):
        return lambda x: {"value": t(key, x)}

    def _read(self):
        return self.p.c.api.queue_read(self.path)

    def _table(self, lang: str) -> str:
        if not self.path.exists():
            return t("queue.empty", lang)
        try:
            return queue_markdown(self._read(), lang)
        except Exception as exc:  # noqa: BLE001 - a broken file is shown, not raised
            return "⚠️ " + t("queue.error", lang, reason=md_text(exc))

    def _shown(self, lang: str, message: str | None = None) -> Updates:
        out: Updates = {self.table: self._table(lang), self.timer: gr.Timer(active=self.worker.running())}
        if message is not None:
            out[self.message] = message
        return out

    # ---- handlers -----------------------------------------------------------------------
    def on_add(self, data: Mapping[Any, Any]) -> Updates:
        lang = data[self.p.lang]
        cfg, problems = validate_form(self.p.events.values(data))
        sweep = None
        text = str(data[self.sweep] or "").strip()
        if text:
            try:
                sweep = json.loads(text)
            except json.JSONDecodeError as exc:
                return self._shown(lang, "⚠️ " + t("queue.sweep.bad", lang, reason=md_text(exc.msg)))
        if cfg is None:
            return self._shown(lang, t("queue.refused", lang) + "\n\n" + problems_markdown(problems, lang))
        try:
            added = self.p.c.api.queue_add(self.path, preset_dict(cfg), sweep)
        except ConfigError as exc:
            return self._shown(
                lang, t("queue.refused", lang) + "\n\n" + problems_markdown(exc.problems, lang)
            )
        except Exception as exc:  # noqa: BLE001 - QueueError: the file; shown
            return self._shown(lang, "⚠️ " + t("queue.error", lang, reason=md_text(exc)))
        names = ", ".join(md_text(e.name) for e in added)
        return self._shown(lang, t("queue.added", lang, n=len(added), names=names))

    def on_run(self, data: Mapping[Any, Any]) -> Updates:
        lang = data[self.p.lang]
        if self.worker.running():
            return self._shown(lang, t("queue.already", lang))
        if self.p.c.runner.running:
            return self._shown(lang, "⚠️ " + t("queue.busy", lang))
        with self.p.estimate.lock:  # an estimate under way ends first (see EstimatePanel)
            self.worker.start()
        time.sleep(0.2)  # the runner claims the file; the table shows it running
        return self._shown(lang, t("queue.started", lang))

    def on_tick(self, data: Mapping[Any, Any]) -> Updates:
        lang = data[self.p.lang]
        if self.worker.running():
            return self._shown(lang)
        done = "⚠️ " + t("queue.error", lang, reason=md_text(self.worker.error)) if self.worker.error else None
        return self._shown(lang, done or t("queue.finished", lang))

    def on_change(self, action: str, data: Mapping[Any, Any]) -> Updates:
        lang = data[self.p.lang]
        entry = int(data[self.entry] or 0)
        try:
            self.p.c.api.queue_change(self.path, action, entry)
        except Exception as exc:  # noqa: BLE001 - QueueError: no such entry, running; shown
            return self._shown(lang, "⚠️ " + t("queue.error", lang, reason=md_text(exc)))
        return self._shown(lang, t("queue.will_stop", lang) if action == "stop_after_current" else "")

    def _grid_files(self, text: str) -> list[str]:
        listed = [line.strip() for line in text.splitlines() if line.strip()]
        if listed:
            return listed
        files = list(self.p.c.runner.snapshot().saved)
        try:
            files += [p for e in self._read().entries for p in e.outputs]
        except Exception:  # noqa: BLE001 - no queue file: the last run's files only
            pass
        return [f for f in dict.fromkeys(files) if f.endswith(".safetensors") and Path(f).is_file()]

    def on_grid(self, data: Mapping[Any, Any]) -> Updates:
        lang, values = data[self.p.lang], self.p.events.values(data)
        model = str(values.get("pretrained_model_name_or_path") or "").strip()
        loras = self._grid_files(str(data[self.loras] or ""))
        prompts = [line.strip() for line in str(data[self.prompts] or "").splitlines() if line.strip()]
        if not model:
            return {self.grid_msg: "⚠️ " + t("grid.no_model", lang)}
        if not loras:
            return {self.grid_msg: "⚠️ " + t("grid.no_files", lang)}
        try:
            weights = [float(w) for w in str(data[self.weights] or "").replace(",", " ").split()]
        except ValueError:
            weights = []
        if not weights:
            return {self.grid_msg: "⚠️ " + t("grid.bad_weights", lang)}
        size = None
        if str(data[self.size] or "").strip():
            try:
                w, h = (int(v) for v in str(data[self.size]).replace("x", ",").split(","))
                size = (w, h)
            except ValueError:
                return {self.grid_msg: "⚠️ " + t("grid.bad_size", lang)}
        folder = str(values.get("output_dir") or "").strip() or tempfile.mkdtemp(prefix="lora-grid-")
        out = Path(folder).expanduser() / f"grid-{time.strftime('%Y%m%d-%H%M%S')}.png"
        options = {"seed": int(data[self.seed] or 1), "steps": int(data[self.steps] or 20), "size": size}
        try:
            path = self.p.c.api.render_grid(model, loras, prompts, weights, out, **options)
        except Exception as exc:  # noqa: BLE001 - GridError / ModelLoadError / OSError: shown
            return {self.grid_msg: "⚠️ " + t("grid.failed", lang, reason=md_text(exc))}
        served = self.p.c.downloadable([str(path)])
        return {
            self.grid_msg: t("grid.done", lang, path=md_text(path)),
            self.image: str(path),
            self.download: served[0] if served else None,
        }

    # ---- wiring -------------------------------------------------------------------------
    def connect(self) -> None:
        p = self.p
        form_in = {*p.form.widgets.values(), p.lang}
        shown = [self.table, self.timer, self.message]
        raw = {**PRIVATE, "preprocess": False}
        self.add_btn.click(self.on_add, {*form_in, self.sweep}, shown, **raw)
        self.run_btn.click(self.on_run, {p.lang}, shown, **PRIVATE)
        self.refresh_btn.click(lambda d: self._shown(d[p.lang]), {p.lang}, shown, **PRIVATE)
        self.timer.tick(self.on_tick, {p.lang}, shown, **PRIVATE)
        self.stop_btn.click(lambda d: self.on_change("stop_after_current", d), {p.lang}, shown, **PRIVATE)
        for action, button in self.move.items():
            button.click(lambda d, a=action: self.on_change(a, d), {p.lang, self.entry}, shown, **PRIVATE)
        grid_in = {*form_in, self.loras, self.prompts, self.weights, self.seed, self.steps, self.size}
        self.render_btn.click(self.on_grid, grid_in, [self.grid_msg, self.image, self.download], **raw)
