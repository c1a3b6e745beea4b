"""Kohya's tools: a config file at any path (open, save, download) in the Configuration
file accordion; Print training command and TensorBoard beside Start training. The work is
done in `lora_gui.tools`; this file lays the components out and turns results into
updates. `page` is the lora_gui.app.Page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gradio as gr

from lora_gui.i18n import t
from lora_gui.tools import (
    TensorBoard,
    ToolError,
    config_path,
    default_config_path,
    save_config,
    training_command,
)
from lora_gui.wiring import FOLLOW_MODEL

Updates = dict[Any, Any]
PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


class ToolsPanel:
    def __init__(self, page: Any, tensorboard: TensorBoard | None = None):
        self.p = page
        self.tensorboard = tensorboard or TensorBoard()

    def render_config(self, lg: str) -> None:
        """The config file row (inside the Configuration file accordion, as in Kohya)."""
        tr = self.p._tr
        with gr.Row(equal_height=True):
            self.path = tr(
                gr.Textbox(
                    label=t("tools.config_path", lg),
                    info=t("tools.config_path.info", lg),
                    elem_id="tools-config-path",
                    scale=4,
                ),
                lambda x: {"label": t("tools.config_path", x), "info": t("tools.config_path.info", x)},
            )
            self.p.browser.button("config_path", self.path, lambda x: t("tools.config_path", x))
            self.open_btn = tr(
                gr.Button(t("tools.open", lg), elem_id="tools-open", scale=0, min_width=110),
                lambda x: {"value": t("tools.open", x)},
            )
            self.save_btn = tr(
                gr.Button(t("tools.save", lg), elem_id="tools-save", scale=0, min_width=110),
                lambda x: {"value": t("tools.save", x)},
            )
            self.download = tr(
                gr.DownloadButton(t("tools.download", lg), visible=False, elem_id="tools-download", scale=1),
                lambda x: {"label": t("tools.download", x)},
            )
        self.message = gr.Markdown("", elem_id="tools-message")

    def render_run_tools(self, lg: str) -> None:
        """Print training command and TensorBoard (beside Start training, as in Kohya)."""
        tr = self.p._tr
        with gr.Row():
            self.print_btn = tr(
                gr.Button(t("tools.print", lg), elem_id="tools-print"),
                lambda x: {"value": t("tools.print", x)},
            )
            self.tb_btn = tr(
                gr.Button(t("tools.tensorboard", lg), elem_id="tools-tensorboard"),
                lambda x: {"value": t("tools.tensorboard", x)},
            )
        self.run_message = gr.Markdown("", elem_id="tools-run-message")
        self.command = tr(
            gr.Code(
                "", language="shell", label=t("tools.command", lg), visible=False, elem_id="tools-command"
            ),
            lambda x: {"label": t("tools.command", x)},
        )

    # ---- handlers -----------------------------------------------------------------------
    def _failed(self, exc: ToolError, lang: str) -> Updates:
        return {self.message: "⚠️ " + t(exc.key, lang, **exc.extra)}

    def _offer(self, path: Any) -> Any:
        """The download button offering `path` (made servable: that exact file only)."""
        served = self.p.c.downloadable([str(path)])
        return gr.update(value=served[0], visible=True) if served else gr.update(visible=False)

    def on_save(self, data: Mapping[Any, Any]) -> Updates:
        lang, values = data[self.p.lang], self.p.events.values(data)
        try:
            saved = save_config(values, config_path(data[self.path]), lang)
        except ToolError as exc:
            return self._failed(exc, lang)
        return {
            self.message: t("tools.saved", lang, path=saved),
            self.path: str(saved),
            self.download: self._offer(saved),
        }

    def on_open(self, data: Mapping[Any, Any]) -> Updates:
        lang = data[self.p.lang]
        try:
            path = config_path(data[self.path])
        except ToolError as exc:
            return self._failed(exc, lang)
        if not path.is_file():
            return {self.message: "⚠️ " + t("tools.not_found", lang, path=path)}
        out = self.p.events.on_load_preset(str(path), lang)
        out[self.message] = out.get(self.p.preset_msg, "")
        if not str(out[self.message]).startswith("⚠️"):
            out[self.path] = str(path)
            out[self.download] = self._offer(path)
        return out

    def on_print(self, data: Mapping[Any, Any]) -> Updates:
        lang, values = data[self.p.lang], self.p.events.values(data)
        text = str(data[self.path] or "").strip() or default_config_path(values)
        if not text:
            return {self.run_message: "⚠️ " + t("tools.no_output", lang)}
        try:
            path = config_path(text)
            command = training_command(values, path, lang)
        except ToolError as exc:
            return {
                self.run_message: "⚠️ " + t(exc.key, lang, **exc.extra),
                self.command: gr.update(visible=False),
            }
        return {
            self.run_message: t("tools.command_saved", lang, path=path),
            self.command: gr.update(value=command, visible=True),
            self.path: str(path),
            self.download: self._offer(path),
        }

    def on_tensorboard(self, data: Mapping[Any, Any]) -> Updates:
        lang = data[self.p.lang]
        logdir = str(self.p.events.values(data).get("logging_dir") or "").strip()
        if not logdir:
            return {self.run_message: "⚠️ " + t("tools.tb_no_logdir", lang)}
        try:
            url, started = self.tensorboard.start(logdir)
        except OSError as exc:
            return {self.run_message: "⚠️ " + t("tools.tb_failed", lang, reason=exc.strerror or str(exc))}
        key = "tools.tb_started" if started else "tools.tb_running"
        return {self.run_message: t(key, lang, logdir=self.tensorboard.logdir, url=url)}

    # ---- wiring -------------------------------------------------------------------------
    def connect(self) -> None:
        p = self.p
        form = p.form
        inputs = {*form.widgets.values(), p.lang, self.path}
        raw = {**PRIVATE, "preprocess": False}
        offered = [self.message, self.path, self.download]
        self.save_btn.click(self.on_save, inputs, offered, **raw)
        self.print_btn.click(self.on_print, inputs, [*offered, self.run_message, self.command], **raw)
        self.tb_btn.click(self.on_tensorboard, inputs, [self.run_message], **raw)
        loaded = [*form.widgets.values(), p.preset_msg, p.preset_state, p.preset_dd, *offered]
        followed = [form.widgets[k] for k in FOLLOW_MODEL if k in form.widgets]
        refresh_out = [p.model_md, p.quick_pick, *followed, p.summary_md, *form.error_markdowns()]
        self.open_btn.click(self.on_open, {p.lang, self.path}, loaded, **PRIVATE).then(
            p.events.refresh, {*form.widgets.values(), p.lang}, refresh_out, **raw
        )
