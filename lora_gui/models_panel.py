"""The Source Model tab's models folder, and the model download that Start begins.

Under the Quick Pick: the models folder (typed, or chosen with 📂; remembered in the
settings folder), whose models join the Quick Pick. Under Start: the download's progress
line, polled by its own timer while a Hugging Face id is fetched, after which Start is
pressed for the user and the run panel takes over. `page` is the lora_gui.app.Page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gradio as gr

from lora_gui.downloads import download_markdown
from lora_gui.i18n import t
from lora_gui.models_pick import ModelChoices, folder_models
from lora_gui.values import problems_markdown, validate_form

Updates = dict[Any, Any]
PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
MODEL = "pretrained_model_name_or_path"


class ModelsPanel:
    def __init__(self, page: Any, choices: ModelChoices):
        self.p = page
        self.choices = choices
        self.downloads = page.c.downloads

    # ---- layout -------------------------------------------------------------------------
    def render_models_dir(self, lg: str) -> None:
        """The models folder row (inside the Source Model tab, under the Quick Pick)."""
        with gr.Row(equal_height=False):
            self.models_dir = self.p._tr(
                gr.Textbox(
                    self.choices.models_dir,
                    label=t("models_dir", lg),
                    info=t("models_dir.info", lg),
                    elem_id="models-dir",
                    scale=4,
                ),
                lambda x: {"label": t("models_dir", x), "info": t("models_dir.info", x)},
            )
            self.p.browser.button("models_dir", self.models_dir, lambda x: t("models_dir", x))
        self.models_msg = gr.Markdown("", elem_id="models-dir-message")
        self.p.browser.after["models_dir"] = (self.on_models_dir_data, [self.models_dir], self.models_out)

    def render_download(self, lg: str) -> None:
        """The download's progress line (under the run panel's Start button and message)."""
        self.download_md = gr.Markdown(
            download_markdown(self.downloads.snapshot(), lg), elem_id="model-download"
        )
        self.download_timer = gr.Timer(0.5, active=self.downloads.snapshot().active)

    @property
    def models_out(self) -> list[Any]:
        return [self.p.quick_pick, self.models_msg]

    # ---- models folder ------------------------------------------------------------------
    def on_models_dir(self, folder: str, lang: str) -> Updates:
        problem = self.choices.set_models_dir(str(folder or ""))
        found = len(folder_models(self.choices.models_dir))
        message = t(problem, lang) if problem else (t("models_dir.found", lang, n=found) if found else "")
        return {
            self.p.quick_pick: gr.update(choices=self.choices.choices(lang)),
            self.models_msg: ("⚠️ " + message) if problem else message,
        }

    def on_models_dir_data(self, data: Mapping[Any, Any]) -> Updates:
        return self.on_models_dir(data[self.models_dir], data[self.p.lang])

    # ---- Start downloads first ----------------------------------------------------------
    def start_hook(self, values: dict[str, Any], lang: str) -> Updates | None:
        """Start's first step: when the model is an id to download, check the rest of the
        form, begin the download and return what the page shows; None: Start as usual."""
        p, model = self.p, str(values.get(MODEL) or "").strip()
        if self.downloads.snapshot().active:
            return {p.run_msg: "⏳ " + t("download.busy", lang)}
        if p.c.runner.running or not self.downloads.needed(model):
            return None
        cfg, problems = validate_form(values)
        if cfg is None:
            return None  # Start lists the form's problems
        try:
            problems = [x for x in p.c.api.preflight(cfg)[0] if getattr(x, "key", "") != MODEL]
        except Exception:  # noqa: BLE001 - Start after the download says it again
            problems = []
        if problems:
            text = f"❌ **{t('run.not_started', lang)}**\n\n" + problems_markdown(problems, lang, p.c.fields)
            return {p.run_msg: text}
        token = str(values.get("huggingface_token") or "")
        self.downloads.start(model, token, then=lambda: p.c.start(values, lang))
        return {
            p.run_msg: "⏳ " + t("download.started", lang),
            self.download_md: download_markdown(self.downloads.snapshot(), lang),
            self.download_timer: gr.Timer(active=True),
        }

    def on_tick(self, lang: str) -> Updates:
        """The progress line; once over, what Start said after it (and the run panel's timer)."""
        s = self.downloads.snapshot()
        out: Updates = {
            self.download_md: download_markdown(s, lang),
            self.download_timer: gr.Timer(active=s.active),
        }
        if s.status == "failed":
            out[self.p.run_msg] = ""
        elif s.status == "done":
            outcome = s.outcome
            out[self.p.run_msg] = (
                getattr(outcome, "message", outcome if isinstance(outcome, str) else "") or ""
            )
            if getattr(outcome, "started", False):
                out[self.p.timer] = gr.Timer(active=True)
        return out

    @property
    def start_outputs(self) -> list[Any]:
        return [self.download_md, self.download_timer]

    # ---- wiring -------------------------------------------------------------------------
    def connect(self, demo: gr.Blocks) -> None:
        p = self.p
        for event in (self.models_dir.submit, self.models_dir.blur):
            event(self.on_models_dir, [self.models_dir, p.lang], self.models_out, **PRIVATE)
        self.download_timer.tick(
            self.on_tick, p.lang, [self.download_md, self.download_timer, p.run_msg, p.timer], **PRIVATE
        )
        demo.load(self.on_open, p.lang, [self.download_md, self.download_timer], **PRIVATE)

    def on_open(self, lang: str) -> Updates:
        """A page opened during a download follows it too."""
        s = self.downloads.snapshot()
        return {self.download_md: download_markdown(s, lang), self.download_timer: gr.Timer(active=s.active)}
