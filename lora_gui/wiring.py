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

from lora_gui.handlers import loaded_message, preset_record
from lora_gui.i18n import LANGS, pick_language, t
from lora_gui.models_pick import flags_for
from lora_gui.panel import error_markdown, files_note, logs_text, loss_plot, progress_markdown
from lora_gui.presets import PresetError
from lora_gui.values import form_values, md_text

Updates = dict[Any, Any]
# What the page runs in the browser (app.py holds the CSS these work with).
FOLLOW_LOG_JS = """() => {
  const box = document.querySelector('#run-logs textarea');
  if (!box) return [];
  if (!box.dataset.follow) {
    box.dataset.follow = '1';
    box.addEventListener('scroll', () => {
      box.dataset.follow = box.scrollTop + box.clientHeight >= box.scrollHeight - 24 ? '1' : '0';
    });
  }
  if (box.dataset.follow === '1') box.scrollTop = box.scrollHeight;
  return [];
}"""  # the run log follows its newest line unless the reader scrolled up
HELP_TOGGLE_JS = "(show) => { document.body.classList.toggle('lora-help-open', !!show); return []; }"
# Each field's help, cut to one line on the page, is whole in its tooltip (tabs render late
# and a language switch rewrites the texts, so the tooltips follow the page's changes).
TOOLTIPS_JS = """() => {
  const titled = () => document.querySelectorAll('.lora-field .info-text').forEach(e => {
    if (e.title !== e.textContent) e.title = e.textContent;
  });
  titled();
  new MutationObserver(titled).observe(document.body, {subtree: true, childList: true, characterData: true});
  return [];
}"""
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

    @property
    def path_fields(self) -> list[Any]:
        """The folder and file fields other than the model: checked when they change, also
        by pasting or a picker, and when the user leaves them."""
        return [
            w
            for name, w in self.form.widgets.items()
            if w is not self.path_widget and (self.form.fields[name].widget or "").startswith("path")
        ]

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
        new_lang = seen.get("lang") != lang  # the captions, log and curves are in the page's language
        changed = seen.get("version") != (s.run_id, s.version) or new_lang
        files = tuple(s.saved)
        samples = tuple(x["path"] for x in s.samples)
        return {
            p.progress_md: progress_markdown(s, lang),
            p.plot: loss_plot(s, lang) if changed else gr.skip(),
            p.logs: logs_text(s, lang) if changed else gr.skip(),
            p.files: self.c.downloadable(list(files)) if files != seen.get("files") else gr.skip(),
            p.files_md: files_note(s, lang),
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
        said = data[p.run_said] or {}
        return merged(
            {p.lang: lang},
            relabelled,
            {p.model_md: self.c.model(data[self.path_widget], lang)[0]},
            {p.preset_msg: loaded_message(data[p.preset_state], lang)} if data[p.preset_state] else {},
            {p.run_msg: said[lang]} if lang in said else {},
            self.checks(self.values(data), lang),
            self.panel(lang, {}),
            # The chart fixes its legend when it draws from nothing: cleared here, drawn
            # again with the series named in `lang` by `chart` right after.
            {p.plot: None},
        )

    def chart(self, lang: str) -> Any:
        return loss_plot(self.c.runner.snapshot(), lang)

    # ---- handlers ----------------------------------------------------------------------
    def on_input(self, data: Mapping[Any, Any]) -> Updates:
        return self.checks(self.values(data), data[self.p.lang])

    def refresh(self, data: Mapping[Any, Any]) -> Updates:
        """Model check (v2 / SDXL follow the detected family), then the form checks."""
        lang, values = data[self.p.lang], self.values(data)
        path = values["pretrained_model_name_or_path"]
        message, implied = self.c.model(path, lang)
        values.update(implied)
        followed = {w: gr.update(value=v) for w, v in self.form.show(implied).items()}
        pick = self.p.quick_pick_value(path, lang)  # Quick Pick names the model in the path, or custom
        return {self.p.model_md: message, self.p.quick_pick: pick, **followed, **self.checks(values, lang)}

    def on_quick_pick(self, pick: str) -> Updates:
        """The path, and for a known Hugging Face id its v2 / v_parameterization / SDXL."""
        if pick == "custom":
            return {}
        return {self.path_widget: pick, **self.form.show(flags_for(pick))}

    def on_load_preset(self, path: str | None, lang: str, uploaded: bool = False) -> Updates:
        """Load a preset or a Kohya GUI file as the Kohya GUI does: the settings it sets
        change, every other one keeps its current value (model and folders included)."""
        if not path:
            return {self.p.preset_msg: t("preset.none", lang)}
        try:
            loaded = self.c.load_preset(path)
        except PresetError as exc:
            return {self.p.preset_msg: "⚠️ " + md_text(exc)}
        record = preset_record(Path(path).stem, loaded)
        out = {
            **self.form.show(loaded.changes(self.form.fields)),
            self.p.preset_msg: loaded_message(record, lang, self.form.fields),
            self.p.preset_state: record,
        }
        if uploaded:  # a file from elsewhere: no preset of the list is loaded
            out[self.p.preset_dd] = None
        return out

    def on_upload(self, path: str | None, lang: str) -> Updates:
        return self.on_load_preset(path, lang, uploaded=True)

    def on_save(self, data: Mapping[Any, Any]) -> Updates:
        lang = data[self.p.lang]
        try:
            path = self.c.save_preset(self.values(data), data[self.p.preset_name] or "", lang)
        except PresetError as exc:
            return {self.p.preset_msg: "⚠️ " + md_text(exc)}
        return {
            self.p.preset_msg: t("preset.saved", lang, path=md_text(path)),
            self.p.preset_dd: gr.update(choices=self.c.preset_choices(lang), value=str(path)),
        }

    def on_start(self, data: Mapping[Any, Any]) -> Updates:
        """Start, or say every reason it cannot; the last run's messages go either way."""
        lang, values = data[self.p.lang], self.values(data)
        downloading = self.p.models.start_hook(values, lang)  # a Hugging Face id to fetch first
        if downloading is not None:
            return downloading
        if self.p.queue.worker.running():  # one training at a time on this GPU
            said = {lg: "⚠️ " + t("run.queue_busy", lg) for lg in LANGS}
            return {self.p.run_msg: said[lang], self.p.run_said: said}
        with self.p.estimate.lock:  # an estimate under way ends first (see EstimatePanel)
            outcome = self.c.start(values, lang)
        problems = outcome.problems or self.c.problems(values)
        # The panel as it is now (the old run's words are gone); its timer runs while the
        # new run does.
        return {
            **self.panel(lang, {}),
            self.p.run_msg: outcome.message,
            self.p.run_said: outcome.said,
            **self.form.error_texts(problems, lang),
        }

    def on_stop(self, lang: str) -> Updates:
        """Stop after this step: the progress line says so until the run has stopped (then
        it says where the file is and how to continue)."""
        if self.c.runner.stop():
            return {self.p.progress_md: progress_markdown(self.c.runner.snapshot(), lang)}
        said = {lg: t("run.not_running", lg) for lg in LANGS}
        return {self.p.run_msg: said[lang], self.p.run_said: said}

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
        panel_out = [
            p.progress_md,
            p.plot,
            p.logs,
            p.files,
            p.files_md,
            p.error_md,
            p.gallery,
            p.timer,
            p.seen,
        ]
        followed = [self.form.widgets[k] for k in FOLLOW_MODEL if k in self.form.widgets]
        refresh_out = [p.model_md, p.quick_pick, *followed, *checks_out]

        # Every event that reads the form takes the raw values (preprocess=False): a number
        # out of its range then reaches our validation, which names the field, instead of
        # failing in Gradio before any handler runs.
        private: dict[str, Any] = {"api_visibility": "private"}
        # Every handler that writes the page's words runs in one queue, in the order its
        # events came: a model check or preset load still under way when the language is
        # switched (a slow machine, the page just opened) finishes before the switch
        # rewrites the page, instead of after it, in the old language.
        said_in_order: dict[str, Any] = {**private, "concurrency_id": "page-words", "concurrency_limit": 1}
        raw: dict[str, Any] = {**said_in_order, "preprocess": False, "show_progress": "hidden"}

        # .input, not .change, for most fields: only what the user types re-checks the form;
        # a preset load (80+ fields at once) re-checks once through `refresh` below. Paths
        # are checked on .change (typing, pasting, a picker, a preset) and on leaving the
        # field (.blur: the folder may have changed on the disk meanwhile).
        paths = self.path_fields
        typed = [w.input for w in widgets if w is not self.path_widget and w not in paths]
        typed += [e for w in paths for e in (w.change, w.blur)]
        gr.on(typed, self.on_input, form_in, checks_out, trigger_mode="always_last", **raw)
        model_events = [self.path_widget.change, self.path_widget.blur]
        gr.on(model_events, self.refresh, form_in, refresh_out, trigger_mode="always_last", **raw)
        p.quick_pick.input(self.on_quick_pick, p.quick_pick, [self.path_widget, *followed], **said_in_order)

        loaded_out = [*widgets, p.preset_msg, p.preset_state, p.preset_dd]
        for event, handler, source in (
            (p.load_btn.click, self.on_load_preset, p.preset_dd),
            (p.upload.upload, self.on_upload, p.upload),
        ):
            event(handler, [source, p.lang], loaded_out, **said_in_order).then(
                self.refresh, form_in, refresh_out, **raw
            )
        p.save_btn.click(self.on_save, {*form_in, p.preset_name}, [p.preset_msg, p.preset_dd], **raw)

        start_out = list(dict.fromkeys([p.run_msg, p.run_said, *errors, *panel_out, *p.models.start_outputs]))
        p.start_btn.click(self.on_start, form_in, start_out, **raw).then(None, js=FOLLOW_LOG_JS, **private)
        p.stop_btn.click(self.on_stop, p.lang, [p.run_msg, p.run_said, p.progress_md], **said_in_order)
        p.timer.tick(self.panel, [p.lang, p.seen], panel_out, show_progress="hidden", **private).then(
            None, js=FOLLOW_LOG_JS, **private
        )
        p.help_toggle.change(None, p.help_toggle, None, js=HELP_TOGGLE_JS, **private)
        demo.load(None, js=TOOLTIPS_JS, **private)

        # A language switch (and opening the page) rewrites every label and message.
        every = list(
            dict.fromkeys(
                [p.lang, *(c for c, _ in p.tr), p.model_md, p.preset_msg, p.run_msg, *checks_out, *panel_out]
            )
        )
        said = {*widgets, p.preset_state, p.run_said}
        for event, handler, inputs in (
            (p.lang_radio.input, self.on_language, {*said, p.lang_radio}),
            (demo.load, self.on_open, said),
        ):
            event(handler, inputs, every, **raw).then(self.chart, p.lang, p.plot, **said_in_order).then(
                None, js=FOLLOW_LOG_JS, **private
            )
