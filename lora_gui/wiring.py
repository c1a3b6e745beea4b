"""What the page's events read and write, wired by component, never by position.

Each handler takes its inputs as one dict keyed by component (Gradio's `inputs={...}`
form) and returns `{component: value or gr.update(...)}`; a component it leaves out keeps
what it shows. The field widgets are found by field name in `Form.widgets`, so no handler
depends on the order of the components. Behaviour lives in `handlers.Controller`; this
file turns its plain values into updates of the page's components.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gradio as gr

from lora_gui.i18n import pick_language, t
from lora_gui.models_pick import flags_for
from lora_gui.panel import error_markdown, logs_text, loss_frame, progress_markdown
from lora_gui.presets import PresetError
from lora_gui.values import form_values

Updates = dict[Any, Any]
# Checkboxes that follow the detected model family.
FOLLOW_MODEL = ("v2", "sdxl", "v_parameterization")


def _update_fields(value: Any) -> dict[str, Any]:
    """One component's output as gr.update's keyword arguments."""
    if isinstance(value, dict) and value.get("__type__") == "update":
        return {k: v for k, v in value.items() if k != "__type__"}
    return {"value": value}


def merged(*parts: Mapping[Any, Any]) -> Updates:
    """Handler outputs joined; a component named twice (a new label and a new value) gets
    one update that carries both."""
    out: Updates = {}
    for part in parts:
        for component, value in part.items():
            if component in out:
                value = gr.update(**{**_update_fields(out[component]), **_update_fields(value)})
            out[component] = value
    return out


class Events:
    """The page's handlers, reading and writing the components `page` laid out.

    `page` is the `lora_gui.app.Page` (not imported here: app imports this module)."""

    def __init__(self, page: Any):
        self.p = page
        self.c = page.c
        self.form = page.form

    @property
    def path_widget(self) -> Any:
        return self.form.widgets["pretrained_model_name_or_path"]

    # ---- what several handlers show ----------------------------------------------------
    def values(self, data: Mapping[Any, Any]) -> dict[str, Any]:
        """The form's values by field name, from an event's inputs."""
        return form_values(self.form.read(data), self.form.fields)

    def checks(self, values: dict[str, Any], lang: str) -> Updates:
        """Summary + every group's error box for `values`."""
        return {
            self.p.summary_md: self.c.summary(values, lang),
            **self.form.error_texts(self.c.problems(values), lang),
        }

    def panel(self, lang: str, seen: dict) -> Updates:
        """Progress, curve, log, files, error, samples, timer and the per-tab 'seen' marker."""
        p, s = self.p, self.c.runner.snapshot()
        changed = seen.get("version") != (s.run_id, s.version)
        files = tuple(s.saved)
        samples = tuple(x["path"] for x in s.samples)
        new_lang = seen.get("lang") != lang  # the captions are in the page's language
        return {
            p.progress_md: progress_markdown(s, lang),
            p.plot: loss_frame(s) if changed else gr.skip(),
            p.logs: logs_text(s) if changed else gr.skip(),
            p.files: self.c.downloadable(list(files)) if files != seen.get("files") else gr.skip(),
            p.error_md: error_markdown(s, lang),
            p.gallery: self.c.samples(s, lang) if samples != seen.get("samples") or new_lang else gr.skip(),
            p.timer: gr.Timer(active=s.active),
            p.seen: {"version": (s.run_id, s.version), "files": files, "samples": samples, "lang": lang},
        }

    def relabel(self, lang: str, data: Mapping[Any, Any], labels: bool = True) -> Updates:
        """Everything the page says in `lang`: the labels (unless `labels` is False), the
        model check, the form checks and the run panel."""
        p = self.p
        relabelled = {c: gr.update(**fn(lang)) for c, fn in p.tr} if labels else {}
        return merged(
            {p.lang: lang},
            relabelled,
            {p.model_md: self.c.model(data[self.path_widget], lang)[0]},
            self.checks(self.values(data), lang),
            self.panel(lang, {}),
        )

    # ---- handlers ----------------------------------------------------------------------
    def on_input(self, data: Mapping[Any, Any]) -> Updates:
        return self.checks(self.values(data), data[self.p.lang])

    def refresh(self, data: Mapping[Any, Any]) -> Updates:
        """Model check (v2 / SDXL follow the detected family), then the form checks."""
        lang, values = data[self.p.lang], self.values(data)
        message, implied = self.c.model(values["pretrained_model_name_or_path"], lang)
        values.update(implied)
        followed = {w: gr.update(value=v) for w, v in self.form.show(implied).items()}
        return {self.p.model_md: message, **followed, **self.checks(values, lang)}

    def on_quick_pick(self, pick: str) -> Updates:
        """The path, and for a known Hugging Face id its v2 / v_parameterization / SDXL."""
        if pick == "custom":
            return {}
        return {self.path_widget: pick, **self.form.show(flags_for(pick))}

    def on_load_preset(self, path: str | None, lang: str) -> Updates:
        if not path:
            return {self.p.preset_msg: t("preset.none", lang)}
        try:
            loaded = self.c.load_preset(path)
        except PresetError as exc:
            return {self.p.preset_msg: f"⚠️ {exc}"}
        message = self.c.preset_message(Path(path).stem, loaded, lang)
        return {**self.form.show(loaded.values), self.p.preset_msg: message}

    def on_save(self, data: Mapping[Any, Any]) -> Updates:
        lang = data[self.p.lang]
        try:
            path = self.c.save_preset(self.values(data), data[self.p.preset_name] or "", lang)
        except PresetError as exc:
            return {self.p.preset_msg: f"⚠️ {exc}"}
        return {
            self.p.preset_msg: t("preset.saved", lang, path=path),
            self.p.preset_dd: gr.update(choices=self.c.preset_choices(lang), value=str(path)),
        }

    def on_start(self, data: Mapping[Any, Any]) -> Updates:
        lang, values = data[self.p.lang], self.values(data)
        downloading = self.p.models.start_hook(values, lang)  # a Hugging Face id to fetch first
        if downloading is not None:
            return downloading
        outcome = self.c.start(values, lang)
        out = {self.p.run_msg: outcome.message, **self.form.error_texts(self.c.problems(values), lang)}
        if outcome.started:
            out[self.p.timer] = gr.Timer(active=True)
        return out

    def on_language(self, data: Mapping[Any, Any]) -> Updates:
        return self.relabel(data[self.p.lang_radio], data)

    def on_open(self, data: Mapping[Any, Any], request: gr.Request) -> Updates:
        p = self.p
        lang = p.opt.lang or pick_language(request.headers.get("accept-language") if request else None)
        out = self.relabel(lang, data, labels=lang != p.lang0)  # the page is built in lang0
        out[p.lang_radio] = gr.update(value=lang, label=t("language", lang))
        return out

    # ---- wiring ------------------------------------------------------------------------
    def connect(self, demo: gr.Blocks) -> None:
        """Attach every handler to its events (inside `demo`'s context)."""
        p = self.p
        widgets = list(self.form.widgets.values())
        form_in = {*widgets, p.lang}
        errors = self.form.error_markdowns()
        checks_out = [p.summary_md, *errors]
        panel_out = [p.progress_md, p.plot, p.logs, p.files, p.error_md, p.gallery, p.timer, p.seen]
        followed = [self.form.widgets[k] for k in FOLLOW_MODEL if k in self.form.widgets]
        refresh_out = [p.model_md, *followed, *checks_out]

        # Every event that reads the form takes the raw values (preprocess=False): a number
        # out of its range then reaches our validation, which names the field, instead of
        # failing in Gradio before any handler runs.
        raw: dict[str, Any] = {"preprocess": False, "show_progress": "hidden", "api_visibility": "private"}
        private: dict[str, Any] = {"api_visibility": "private"}

        # .input, not .change: only what the user types re-checks the form; a preset load
        # (80+ fields at once) re-checks once through `refresh` below.
        typed = [w.input for w in widgets if w is not self.path_widget]
        gr.on(typed, self.on_input, form_in, checks_out, trigger_mode="always_last", **raw)
        self.path_widget.input(self.refresh, form_in, refresh_out, trigger_mode="always_last", **raw)
        p.quick_pick.input(self.on_quick_pick, p.quick_pick, [self.path_widget, *followed], **private).then(
            self.refresh, form_in, refresh_out, **raw
        )

        loaded_out = [*widgets, p.preset_msg]
        for event, source in ((p.load_btn.click, p.preset_dd), (p.upload.upload, p.upload)):
            event(self.on_load_preset, [source, p.lang], loaded_out, **private).then(
                self.refresh, form_in, refresh_out, **raw
            )
        p.save_btn.click(self.on_save, {*form_in, p.preset_name}, [p.preset_msg, p.preset_dd], **raw)

        start_out = [p.run_msg, p.timer, *errors, *p.models.start_outputs]
        p.start_btn.click(self.on_start, form_in, start_out, **raw)
        p.stop_btn.click(self.c.stop, p.lang, p.run_msg, **private)
        p.timer.tick(self.panel, [p.lang, p.seen], panel_out, show_progress="hidden", **private)

        # A language switch (and opening the page) rewrites every label and message.
        every = list(dict.fromkeys([p.lang, *(c for c, _ in p.tr), p.model_md, *checks_out, *panel_out]))
        p.lang_radio.input(self.on_language, {*widgets, p.lang_radio}, every, **raw)
        demo.load(self.on_open, set(widgets), every, **raw)
