"""The page: presets bar, the tabs derived from the schema, and the run panel.

Kohya GUI users find what they know: tabs Source Model, Folders, Parameters, Advanced
(and any tab the schema adds), a Model Quick Pick, Start training. Every field widget
comes from `binding.Form`; behaviour lives in `handlers.Controller`; this file only lays
the components out and connects their events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from lora_gui.binding import Form
from lora_gui.handlers import Controller
from lora_gui.i18n import LANG_NAMES, pick_language, t, tab_name
from lora_gui.panel import error_markdown, logs_text, loss_frame, progress_markdown
from lora_gui.presets import DEFAULT_USER_DIR, PresetError
from lora_gui.runner import Runner
from lora_gui.values import form_values
from trainer.config import FIELDS, TABS, FieldSpec

WELL_KNOWN_MODELS = ("runwayml/stable-diffusion-v1-5", "stabilityai/stable-diffusion-xl-base-1.0")
CSS = ".field-errors { color: var(--error-text-color, #c62828); }"


@dataclass
class AppOptions:
    """How the page opens: language (None = from the browser), preset values, folders."""

    lang: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    preset_note: str = ""
    user_dir: Path = DEFAULT_USER_DIR
    demo_model: str = "demo/model"


def quick_pick_choices(lang: str, demo_model: str) -> list[tuple[str, str]]:
    return [(t("quick_pick.custom", lang), "custom"), (t("quick_pick.demo", lang), demo_model)] + [
        (m, m) for m in WELL_KNOWN_MODELS
    ]


class Page:
    """Builds the Blocks and keeps the components its handlers read and write."""

    def __init__(self, controller: Controller, options: AppOptions, fields: Mapping[str, FieldSpec] = FIELDS):
        self.c = controller
        self.opt = options
        self.lang0 = options.lang or "en"
        self.form = Form(fields)
        self.tr: list[tuple[Any, Callable[[str], dict[str, Any]]]] = []

    def _tr(self, component: Any, fn: Callable[[str], dict[str, Any]]) -> Any:
        self.tr.append((component, fn))
        return component

    # ---- layout -------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        lg = self.lang0
        # delete_cache: Gradio's copies of offered LoRA files go after a day (checked hourly).
        with gr.Blocks(title="LoRA trainer", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as demo:
            self.lang = gr.State(lg)
            self.seen = gr.State({})
            with gr.Row(equal_height=True):
                self.title = self._tr(
                    gr.Markdown(f"## {t('title', lg)}"), lambda x: {"value": f"## {t('title', x)}"}
                )
                self.lang_radio = self._tr(
                    gr.Radio(
                        [(n, c) for c, n in LANG_NAMES.items()],
                        value=lg,
                        label=t("language", lg),
                        elem_id="language",
                        scale=0,
                        min_width=220,
                    ),
                    lambda x: {"label": t("language", x)},
                )
            self._presets_bar(lg)
            with gr.Tabs():
                for tab in [x for x in TABS if x == "Source Model" or self.form.groups(x)]:
                    with self._tr(
                        gr.Tab(tab_name(tab, lg), id=tab), lambda x, tb=tab: {"label": tab_name(tb, x)}
                    ):
                        self._tab(tab, lg)
            self.tr.extend(self.form.translations)
            self._run_panel(lg)
            self._wire(demo)
        return demo

    def _presets_bar(self, lg: str) -> None:
        with self._tr(gr.Accordion(t("presets", lg), open=True), lambda x: {"label": t("presets", x)}):
            with gr.Row(equal_height=True):
                self.preset_dd = self._tr(
                    gr.Dropdown(
                        self.c.preset_choices(lg),
                        value=None,
                        label=t("preset.choose", lg),
                        elem_id="preset-choice",
                        scale=3,
                    ),
                    lambda x: {"label": t("preset.choose", x), "choices": self.c.preset_choices(x)},
                )
                self.load_btn = self._tr(
                    gr.Button(t("preset.load", lg), elem_id="preset-load", scale=1),
                    lambda x: {"value": t("preset.load", x)},
                )
                self.preset_name = self._tr(
                    gr.Textbox(label=t("preset.name", lg), scale=2, elem_id="preset-name"),
                    lambda x: {"label": t("preset.name", x)},
                )
                self.save_btn = self._tr(
                    gr.Button(t("preset.save", lg), scale=1, elem_id="preset-save"),
                    lambda x: {"value": t("preset.save", x)},
                )
            with gr.Row(equal_height=False):
                self.upload = self._tr(
                    gr.File(
                        label=t("preset.import", lg),
                        file_types=[".json"],
                        type="filepath",
                        height=120,
                        scale=1,
                        elem_id="preset-upload",
                    ),
                    lambda x: {"label": t("preset.import", x)},
                )
                self.preset_msg = gr.Markdown(self.opt.preset_note, elem_id="preset-message")

    def _tab(self, tab: str, lg: str) -> None:
        extras: dict[str, Callable[[], None]] = {}
        if tab == "Source Model":
            path = str(self.opt.values.get("pretrained_model_name_or_path", ""))
            pick = path if path in (self.opt.demo_model, *WELL_KNOWN_MODELS) else "custom"
            self.quick_pick = self._tr(
                gr.Dropdown(
                    quick_pick_choices(lg, self.opt.demo_model),
                    value=pick,
                    label=t("quick_pick", lg),
                    info=t("quick_pick.info", lg),
                    elem_id="quick-pick",
                ),
                lambda x: {
                    "label": t("quick_pick", x),
                    "info": t("quick_pick.info", x),
                    "choices": quick_pick_choices(x, self.opt.demo_model),
                },
            )

            def model_box() -> None:
                self.model_md = gr.Markdown("", elem_id="model-status")

            extras["Model"] = model_box
        self.form.render_tab(tab, lg, self.opt.values, extras)
        if tab == "Folders":
            self.summary_md = gr.Markdown("", elem_id="dataset-summary")

    def _run_panel(self, lg: str) -> None:
        with gr.Group(), gr.Row():
            self.start_btn = self._tr(
                gr.Button(t("run.start", lg), variant="primary", elem_id="start-training"),
                lambda x: {"value": t("run.start", x)},
            )
            self.stop_btn = self._tr(
                gr.Button(t("run.stop", lg), variant="stop", elem_id="stop-training"),
                lambda x: {"value": t("run.stop", x)},
            )
        self.run_msg = gr.Markdown("", elem_id="run-message")
        self.progress_md = gr.Markdown(t("run.idle", lg), elem_id="run-progress")
        self.error_md = gr.Markdown("", elem_id="run-error")
        with gr.Row(equal_height=False):
            self.plot = self._tr(
                gr.LinePlot(
                    loss_frame(self.c.runner.snapshot()),
                    x="step",
                    y="loss",
                    color="series",
                    label=t("run.loss", lg),
                    height=260,
                    scale=3,
                ),
                lambda x: {"label": t("run.loss", x)},
            )
            with gr.Column(scale=2):
                self.logs = self._tr(
                    gr.Textbox(
                        label=t("run.logs", lg), lines=8, max_lines=8, interactive=False, elem_id="run-logs"
                    ),
                    lambda x: {"label": t("run.logs", x)},
                )
                self.files = self._tr(
                    gr.File(
                        label=t("run.files", lg),
                        file_count="multiple",
                        interactive=False,
                        elem_id="run-files",
                    ),
                    lambda x: {"label": t("run.files", x)},
                )
        self.gallery = self._tr(
            gr.Gallery(
                label=t("run.samples", lg),
                columns=4,
                fit_columns=False,
                height=320,
                object_fit="contain",
                interactive=False,
                elem_id="run-samples",
            ),
            lambda x: {"label": t("run.samples", x)},
        )
        self.timer = gr.Timer(1.0, active=False)

    # ---- events -------------------------------------------------------------------------
    def _values(self, args: tuple) -> dict[str, Any]:
        return form_values(self.form.names, args, self.form.fields)

    def _checks(self, values: dict[str, Any], lang: str) -> list[Any]:
        """Summary + every group's error box for `values`."""
        return [self.c.summary(values, lang), *self.form.error_texts(self.c.problems(values), lang)]

    def _panel(self, lang: str, seen: dict) -> list[Any]:
        """Progress, curve, log, files, error, samples, timer and the per-tab 'seen' marker."""
        s = self.c.runner.snapshot()
        changed = seen.get("version") != (s.run_id, s.version)
        files = tuple(s.saved)
        samples = tuple(x["path"] for x in s.samples)
        new_lang = seen.get("lang") != lang  # the captions are in the page's language
        out = [
            progress_markdown(s, lang),
            loss_frame(s) if changed else gr.skip(),
            logs_text(s) if changed else gr.skip(),
            self.c.downloadable(list(files)) if files != seen.get("files") else gr.skip(),
            error_markdown(s, lang),
            (self.c.samples(s, lang) if samples != seen.get("samples") or new_lang else gr.skip()),
            gr.Timer(active=s.active),
            {"version": (s.run_id, s.version), "files": files, "samples": samples, "lang": lang},
        ]
        return out

    def _wire(self, demo: gr.Blocks) -> None:
        widgets = list(self.form.widgets.values())
        errors = self.form.error_markdowns()
        checks_out = [self.summary_md, *errors]
        panel_out = [
            self.progress_md,
            self.plot,
            self.logs,
            self.files,
            self.error_md,
            self.gallery,
            self.timer,
            self.seen,
        ]

        path_widget = self.form.widgets["pretrained_model_name_or_path"]
        keys = [k for k in ("v2", "sdxl", "v_parameterization") if k in self.form.widgets]
        model_targets = [self.form.widgets[k] for k in keys]

        def on_input(*args):
            return self._checks(self._values(args[:-1]), args[-1])

        # Every event that reads the form takes the raw values (preprocess=False): a number
        # out of its range then reaches our validation, which names the field, instead of
        # failing in Gradio before any handler runs.
        raw: dict[str, Any] = {"preprocess": False, "show_progress": "hidden", "api_visibility": "private"}

        # .input, not .change: only what the user types re-checks the form; a preset load
        # (80+ fields at once) re-checks once through `refresh` below.
        gr.on(
            [w.input for w in widgets if w is not path_widget],
            on_input,
            [*widgets, self.lang],
            checks_out,
            trigger_mode="always_last",
            **raw,
        )

        def refresh(*args):
            """Model check (v2 / SDXL follow the detected family), then the form checks."""
            lang, values = args[-1], self._values(args[:-1])
            message, implied = self.c.model(values["pretrained_model_name_or_path"], lang)
            values.update(implied)
            return [
                message,
                *[gr.update(value=implied[k]) if k in implied else gr.skip() for k in keys],
                *self._checks(values, lang),
            ]

        refresh_io = ([*widgets, self.lang], [self.model_md, *model_targets, *checks_out])
        path_widget.input(refresh, *refresh_io, trigger_mode="always_last", **raw)
        self.quick_pick.input(
            lambda pick: gr.skip() if pick == "custom" else pick,
            self.quick_pick,
            path_widget,
            api_visibility="private",
        ).then(refresh, *refresh_io, **raw)

        def fill(loaded, name, lang):
            vals = [loaded.values[n] for n in self.form.names]
            return [*vals, self.c.preset_message(name, loaded, lang)]

        def on_load_preset(path, lang):
            if not path:
                return [*[gr.skip()] * len(widgets), t("preset.none", lang)]
            try:
                return fill(self.c.load_preset(path), Path(path).stem, lang)
            except PresetError as exc:
                return [*[gr.skip()] * len(widgets), f"⚠️ {exc}"]

        self.load_btn.click(
            on_load_preset, [self.preset_dd, self.lang], [*widgets, self.preset_msg], api_visibility="private"
        ).then(refresh, *refresh_io, **raw)
        self.upload.upload(
            on_load_preset, [self.upload, self.lang], [*widgets, self.preset_msg], api_visibility="private"
        ).then(refresh, *refresh_io, **raw)

        def on_save(*args):
            name, lang = args[-2], args[-1]
            try:
                path = self.c.save_preset(self._values(args[:-2]), name or "", lang)
            except PresetError as exc:
                return f"⚠️ {exc}", gr.skip()
            return (
                t("preset.saved", lang, path=path),
                gr.update(choices=self.c.preset_choices(lang), value=str(path)),
            )

        self.save_btn.click(
            on_save, [*widgets, self.preset_name, self.lang], [self.preset_msg, self.preset_dd], **raw
        )

        def on_start(*args):
            lang = args[-1]
            values = self._values(args[:-1])
            outcome = self.c.start(values, lang)
            err = self.form.error_texts(self.c.problems(values), lang)
            return [outcome.message, gr.Timer(active=True) if outcome.started else gr.skip(), *err]

        self.start_btn.click(on_start, [*widgets, self.lang], [self.run_msg, self.timer, *errors], **raw)
        self.stop_btn.click(self.c.stop, [self.lang], [self.run_msg], api_visibility="private")
        self.timer.tick(
            self._panel, [self.lang, self.seen], panel_out, show_progress="hidden", api_visibility="private"
        )

        tr_out = [c for c, _ in self.tr]

        def relabel(lang, path, *args):
            return [
                lang,
                *[gr.update(**fn(lang)) for _, fn in self.tr],
                self.c.model(path, lang)[0],
                *self._checks(self._values(args), lang),
                *self._panel(lang, {}),
            ]

        every = [self.lang, *tr_out, self.model_md, *checks_out, *panel_out]
        self.lang_radio.input(relabel, [self.lang_radio, path_widget, *widgets], every, **raw)
        radio_at = 1 + tr_out.index(self.lang_radio)

        def on_open(request: gr.Request, *args):
            lang = self.opt.lang or pick_language(request.headers.get("accept-language") if request else None)
            out = relabel(lang, *args)
            if lang == self.lang0:  # the page is already in this language
                out[1 : 1 + len(self.tr)] = [gr.skip()] * len(self.tr)
            out[radio_at] = gr.update(value=lang, label=t("language", lang))
            return out

        demo.load(on_open, [path_widget, *widgets], every, **raw)


def build_app(
    options: AppOptions | None = None, api: Any = None, fields: Mapping[str, FieldSpec] = FIELDS
) -> gr.Blocks:
    """The Gradio Blocks of the trainer; `api` defaults to `trainer.api` (tests pass a fake)."""
    if api is None:
        from trainer import api  # light: the heavy modules load when a run starts
    options = options or AppOptions()
    page_holder: dict[str, gr.Blocks] = {}

    def allow_file(path: str) -> None:
        demo = page_holder["demo"]
        if path not in demo.allowed_paths:
            demo.allowed_paths.append(path)

    controller = Controller(api, Runner(api), fields=fields, user_dir=options.user_dir, allow_file=allow_file)
    page = Page(controller, options, fields)
    demo = page.build()
    page_holder["demo"] = demo
    demo.controller = controller  # for gui.py and tests
    demo.page = page  # tests read the run panel's outputs through it
    return demo
