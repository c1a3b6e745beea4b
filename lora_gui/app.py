"""The page: presets bar, the tabs derived from the schema, and the run panel.

Kohya GUI users find what they know: tabs Source Model, Folders, Parameters, Advanced
(and any tab the schema adds), a Model Quick Pick, Start training. Every field widget
comes from `binding.Form`; behaviour lives in `handlers.Controller`; what the events read
and write is `wiring.Events`. This file only lays the components out and keeps them, as
attributes of `Page`, for the handlers; `make_app` returns the Blocks with what drives it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from lora_gui.binding import Form
from lora_gui.browser_panel import BROWSER_CSS, BrowserPanel
from lora_gui.estimate_panel import EstimatePanel
from lora_gui.handlers import Controller, loaded_message
from lora_gui.i18n import LANG_NAMES, t, tab_name
from lora_gui.models_panel import ModelsPanel
from lora_gui.models_pick import ModelChoices, Settings
from lora_gui.panel import chart_labels, loss_plot
from lora_gui.presets import DEFAULT_USER_DIR
from lora_gui.queue_panel import QueuePanel
from lora_gui.runner import Runner
from lora_gui.security import servable
from lora_gui.tools_panel import ToolsPanel
from lora_gui.utilities_panel import utilities_tab
from lora_gui.wiring import Events
from trainer.config import FIELDS, TABS, FieldSpec

APP_NAME = "LoRA Studio"  # the browser tab's title
CSS = (
    """
.field-errors { color: var(--error-text-color, #c62828); }
/* Help: one line under each label, the whole text as its tooltip (wiring.TOOLTIPS_JS), or
   always with "Show every help text" (body.lora-help-open; !important because Gradio puts
   its own container before each selector here, which no body class can follow). Nothing
   grows on hover or focus: the page never moves under the pointer. */
.lora-field .info-text { display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 1;
  overflow: hidden; cursor: help; }
body.lora-help-open .lora-field .info-text {
  -webkit-line-clamp: unset !important; overflow: visible !important; }
/* A group's fields in columns, as the Kohya GUI lays them out: they wrap instead of
   squeezing (no checkbox label becomes a sliver); paths and text areas take two. */
.lora-row > .form { display: grid !important; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr));
  align-items: start; gap: 0 !important; background: var(--block-background-fill) !important; }
.lora-row .lora-field { min-width: 0 !important; }
.lora-row .lora-wide { grid-column: span 2; }
/* Saved files: the list only offers downloads; its remove button would only hide a file. */
#run-files .label-clear-button { display: none; }
"""
    + BROWSER_CSS
)


@dataclass
class AppOptions:
    """How the page opens: language (None = from the browser), preset values, folders."""

    lang: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    preset_note: str = ""
    preset: str = ""  # the preset file the page opens with (the Preset dropdown shows it)
    preset_record: dict[str, Any] = field(default_factory=dict)  # handlers.preset_record of it
    user_dir: Path = DEFAULT_USER_DIR
    demo_model: str = "demo/model"
    settings_dir: Path = DEFAULT_USER_DIR.parent  # settings.json: the models folder
    models_dir: str | None = None  # None: the remembered one
    file_browser: bool = True  # the 📂 picker (gui.py: off on a network address without --auth)


def preset_choice(path: str, choices: list[tuple[str, str]]) -> str | None:
    """The Preset dropdown's value for the preset file at `path` (None when it is none of them)."""
    if not path:
        return None
    for _, choice in choices:
        if Path(choice).resolve() == Path(path).resolve():
            return choice
    return None


class Page:
    """Builds the Blocks and keeps the components its handlers read and write."""

    def __init__(self, controller: Controller, options: AppOptions, fields: Mapping[str, FieldSpec] = FIELDS):
        self.c = controller
        self.opt = options
        self.lang0 = options.lang or "en"
        self.choices = ModelChoices(options.demo_model, Settings(options.settings_dir), options.models_dir)
        self.browser = BrowserPanel(self, options.file_browser)
        self.form = Form(fields, decorate=self.browser.decorate)
        self.models = ModelsPanel(self, self.choices)
        self.tools = ToolsPanel(self)
        self.estimate = EstimatePanel(self)
        self.queue = QueuePanel(self)  # Add to queue, the Queue and Comparison grid accordions
        self.tr: list[tuple[Any, Callable[[str], dict[str, Any]]]] = []
        self.events = Events(self)

    def quick_pick_value(self, path: str, lang: str = "en") -> str:
        return self.choices.pick_for(str(path or "").strip(), lang)

    def _tr(self, component: Any, fn: Callable[[str], dict[str, Any]]) -> Any:
        self.tr.append((component, fn))
        return component

    # ---- layout -------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        lg = self.lang0
        # delete_cache: Gradio's copies of offered LoRA files go after a day (checked hourly).
        with gr.Blocks(title=APP_NAME, analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as demo:
            self.lang = gr.State(lg)
            self.seen = gr.State({})
            self.preset_state = gr.State(self.opt.preset_record or None)
            self.run_said = gr.State({})  # the run message in every language
            with gr.Row(equal_height=True):
                self.title = self._tr(
                    gr.Markdown(f"## {t('title', lg)}"), lambda x: {"value": f"## {t('title', x)}"}
                )
                self.help_toggle = self._tr(
                    gr.Checkbox(
                        value=False, label=t("help.toggle", lg), elem_id="help-toggle", scale=0, min_width=220
                    ),
                    lambda x: {"label": t("help.toggle", x)},
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
                self.utilities = utilities_tab(self, lg)  # after Advanced / Samples
            self.tr.extend(self.form.translations)
            self.models.render_download(lg)
            self.tools.render_run_tools(lg)
            self._run_panel(lg)
            self.queue.render(lg)
            self.browser.render(lg)
            self.events.connect(demo)
            self.browser.connect()
            self.models.connect(demo)
            self.tools.connect()
            self.estimate.connect(demo)
            self.queue.connect()
        return demo

    def _presets_bar(self, lg: str) -> None:
        with self._tr(gr.Accordion(t("presets", lg), open=True), lambda x: {"label": t("presets", x)}):
            with gr.Row(equal_height=True):
                choices = self.c.preset_choices(lg)
                self.preset_dd = self._tr(
                    gr.Dropdown(
                        choices,
                        value=preset_choice(self.opt.preset, choices),
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
                # A button, not Gradio's drop zone: every word of it is ours, in both languages.
                with gr.Column(scale=1, min_width=240, elem_id="preset-upload"):
                    self.upload = self._tr(
                        gr.UploadButton(
                            t("preset.import", lg),
                            file_types=[".json"],
                            type="filepath",
                            elem_id="preset-upload-button",
                        ),
                        lambda x: {"label": t("preset.import", x)},
                    )
                note = loaded_message(self.opt.preset_record, lg) or self.opt.preset_note
                self.preset_msg = gr.Markdown(note, elem_id="preset-message")
            self.tools.render_config(lg)  # open / save / download a config file at any path

    def _tab(self, tab: str, lg: str) -> None:
        extras: dict[str, Callable[[], None]] = {}
        if tab == "Source Model":
            path = str(self.opt.values.get("pretrained_model_name_or_path", ""))
            self.quick_pick = self._tr(
                gr.Dropdown(
                    self.choices.choices(lg),
                    value=self.choices.pick_for(path, lg),
                    label=t("quick_pick", lg),
                    info=t("quick_pick.info", lg),
                    elem_id="quick-pick",
                ),
                lambda x: {
                    "label": t("quick_pick", x),
                    "info": t("quick_pick.info", x),
                    "choices": self.choices.choices(x),
                },
            )
            self.models.render_models_dir(lg)

            def model_box() -> None:
                self.model_md = gr.Markdown("", elem_id="model-status")

            extras["Model"] = model_box
        self.form.render_tab(tab, lg, self.opt.values, extras)
        if tab == "Folders":
            self.summary_md = gr.Markdown("", elem_id="dataset-summary")
            self.estimate.render(lg)

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
            self.queue.render_add(lg)
        self.run_msg = gr.Markdown("", elem_id="run-message")
        self.progress_md = gr.Markdown(t("run.idle", lg), elem_id="run-progress")
        self.error_md = gr.Markdown("", elem_id="run-error")
        with gr.Row(equal_height=False):
            # No fixed height: the chart fits its block, legend included.
            self.plot = self._tr(
                gr.LinePlot(
                    loss_plot(self.c.runner.snapshot(), lg),
                    x="step",
                    y="loss",
                    color="series",
                    label=t("run.loss", lg),
                    scale=3,
                    elem_id="run-loss",
                    **chart_labels(lg),
                ),
                lambda x: {"label": t("run.loss", x), **chart_labels(x)},
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
                self.files_md = gr.Markdown("", elem_id="run-files-note")
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


@dataclass
class ServedFiles:
    """Offers exactly the files the app made for download (Gradio serves only allowed
    paths): each one file by its full path, never a folder (see `security.servable`)."""

    blocks: gr.Blocks | None = None

    def allow(self, path: str) -> None:
        exact = servable(path)
        if self.blocks is not None and exact is not None and exact not in self.blocks.allowed_paths:
            self.blocks.allowed_paths.append(exact)


@dataclass
class App:
    """The page and what drives it: gui.py launches `blocks` and stops `controller.runner`."""

    blocks: gr.Blocks
    controller: Controller
    page: Page
    events: Events


def make_app(
    options: AppOptions | None = None, api: Any = None, fields: Mapping[str, FieldSpec] = FIELDS
) -> App:
    """The trainer's page; `api` defaults to `trainer.api` (tests pass a fake)."""
    if api is None:
        from trainer import api  # light: the heavy modules load when a run starts
    options = options or AppOptions()
    served = ServedFiles()
    controller = Controller(
        api, Runner(api), fields=fields, user_dir=options.user_dir, allow_file=served.allow
    )
    page = Page(controller, options, fields)
    served.blocks = page.build()
    return App(served.blocks, controller, page, page.events)


def build_app(
    options: AppOptions | None = None, api: Any = None, fields: Mapping[str, FieldSpec] = FIELDS
) -> gr.Blocks:
    """The Gradio Blocks of the trainer (see `make_app`)."""
    return make_app(options, api, fields).blocks
