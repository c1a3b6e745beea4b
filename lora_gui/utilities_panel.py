"""The Utilities tab: verify, resize, merge and extract LoRAs, caption a dataset.

Each sub-tab is the form of one `python -m trainer.tools` command (the same option names)
and runs it through `trainer.api.run_tool` (the engine is never imported here, so no
torch). Paths are only what the user types; the file a tool writes is offered for
download through the app's served-files door (`Controller.downloadable`: that one file).
`page` is the lora_gui.app.Page; `utilities_tab(page, lang)` builds and wires the tab.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import gradio as gr

from lora_gui.i18n import t, tab_name

PRECISIONS = ["fp16", "bf16", "float"]
DYNAMIC = ["sv_ratio", "sv_fro", "sv_cumulative"]
NONE = ""  # "no dynamic method" / "the input's precision" in a dropdown


class BadInput(ValueError):
    """A field the panel itself cannot read (a ratio that is not a number)."""


def parse_models(text: str) -> list[str]:
    """One path per line (blank lines ignored)."""
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def parse_ratios(text: str, lang: str) -> list[float] | None:
    """'1.0, 0.5' or '1 0.5' -> [1.0, 0.5]; empty -> None (1.0 each)."""
    parts = [p for p in re.split(r"[,\s]+", str(text or "").strip()) if p]
    try:
        return [float(p) for p in parts] or None
    except ValueError:
        raise BadInput(t("util.bad_number", lang, option="--ratios", value=text)) from None


def _int(value: Any, option: str, lang: str, zero_is_none: bool = False) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        raise BadInput(t("util.bad_number", lang, option=option, value=value)) from None
    return None if zero_is_none and number == 0 else number


class UtilitiesPanel:
    def __init__(self, page: Any):
        self.p = page

    # ---- layout -------------------------------------------------------------------------
    def _w(
        self, cls: Callable[..., Any], key: str, lg: str, info: str | None = None,
        choices: Callable[[str], list] | None = None, **kw: Any,
    ) -> Any:  # fmt: skip
        """A component labelled t(key) (its choices from `choices(lang)`), relabelled when the
        language changes."""
        extra = {"info": t(info, lg)} if info else {}
        if choices is not None:
            extra["choices"] = choices(lg)

        def relabel(x: str) -> dict[str, Any]:
            out = {"label": t(key, x), **({"info": t(info, x)} if info else {})}
            return {**out, "choices": choices(x)} if choices is not None else out

        return self.p._tr(cls(label=t(key, lg), **extra, **kw), relabel)

    def _button(self, key: str, lg: str, elem_id: str) -> Any:
        return self.p._tr(
            gr.Button(t(key, lg), variant="primary", elem_id=elem_id), lambda x: {"value": t(key, x)}
        )

    def _result(self, name: str, lg: str) -> tuple[Any, Any, Any]:
        """The message line, the report and the download button of one sub-tab."""
        message = gr.Markdown("", elem_id=f"util-{name}-message")
        report = self._w(
            gr.Textbox,
            "util.output",
            lg,
            lines=10,
            max_lines=30,
            interactive=False,
            elem_id=f"util-{name}-output",
        )
        download = self.p._tr(
            gr.DownloadButton(t("util.download", lg), visible=False, elem_id=f"util-{name}-download"),
            lambda x: {"label": t("util.download", x)},
        )
        return message, report, download

    def _precision(self, lg: str, default: str = NONE) -> Any:
        def choices(x: str) -> list:
            same = [(t("util.same_as_input", x), NONE)] if default == NONE else []
            return [*same, *[(p, p) for p in PRECISIONS]]

        return self._w(gr.Dropdown, "util.save_precision", lg, choices=choices, value=default)

    def render(self, lg: str) -> None:
        gr.Markdown(t("util.intro", lg))
        with gr.Tabs():
            with self.p._tr(
                gr.Tab(t("util.run_verify", lg), id="util-verify"),
                lambda x: {"label": t("util.run_verify", x)},
            ):
                self.v_file = self._w(gr.Textbox, "util.file", lg, elem_id="util-verify-file")
                self.v_run = self._button("util.run_verify", lg, "util-verify-run")
                self.v_out = self._result("verify", lg)
            with self.p._tr(
                gr.Tab(t("util.run_resize", lg), id="util-resize"),
                lambda x: {"label": t("util.run_resize", x)},
            ):
                self.r_model = self._w(gr.Textbox, "util.model", lg, elem_id="util-resize-model")
                with gr.Row():
                    self.r_rank = self._w(
                        gr.Number, "util.new_rank", lg, value=4, precision=0, elem_id="util-resize-rank"
                    )
                    self.r_conv = self._w(gr.Number, "util.new_conv_rank", lg, value=0, precision=0)
                    self.r_method = self._w(
                        gr.Dropdown, "util.dynamic_method", lg, value=NONE,
                        choices=lambda x: [(t("util.dynamic_none", x), NONE), *[(m, m) for m in DYNAMIC]],
                    )  # fmt: skip
                    self.r_param = self._w(
                        gr.Number, "util.dynamic_param", lg, info="util.dynamic_param.info", value=0.9
                    )
                with gr.Row():
                    self.r_precision = self._precision(lg)
                    self.r_device = self._w(
                        gr.Dropdown, "util.device", lg, choices=lambda x: ["cpu", "cuda"], value="cpu"
                    )
                self.r_save = self._w(gr.Textbox, "util.save_to", lg, elem_id="util-resize-save")
                self.r_run = self._button("util.run_resize", lg, "util-resize-run")
                self.r_out = self._result("resize", lg)
            with self.p._tr(
                gr.Tab(t("util.run_merge", lg), id="util-merge"), lambda x: {"label": t("util.run_merge", x)}
            ):
                self.m_models = self._w(gr.Textbox, "util.models", lg, lines=3, elem_id="util-merge-models")
                self.m_ratios = self._w(gr.Textbox, "util.ratios", lg, elem_id="util-merge-ratios")
                modes = ("concat", "svd", "checkpoint")
                self.m_mode = self._w(
                    gr.Radio, "util.merge_mode", lg, value="concat",
                    choices=lambda x: [(t(f"util.mode_{m}", x), m) for m in modes],
                )  # fmt: skip
                with gr.Row():
                    self.m_rank = self._w(gr.Number, "util.new_rank", lg, value=8, precision=0)
                    self.m_base = self._w(gr.Textbox, "util.base_model", lg)
                    self.m_precision = self._precision(lg)
                self.m_save = self._w(gr.Textbox, "util.save_to", lg, elem_id="util-merge-save")
                self.m_run = self._button("util.run_merge", lg, "util-merge-run")
                self.m_out = self._result("merge", lg)
            with self.p._tr(
                gr.Tab(t("util.run_extract", lg), id="util-extract"),
                lambda x: {"label": t("util.run_extract", x)},
            ):
                with gr.Row():
                    self.e_org = self._w(gr.Textbox, "util.model_org", lg, elem_id="util-extract-org")
                    self.e_tuned = self._w(gr.Textbox, "util.model_tuned", lg, elem_id="util-extract-tuned")
                with gr.Row():
                    self.e_dim = self._w(gr.Number, "util.dim", lg, value=4, precision=0)
                    self.e_conv = self._w(gr.Number, "util.conv_dim", lg, value=0, precision=0)
                    self.e_clamp = self._w(gr.Number, "util.clamp_quantile", lg, value=0.99)
                    self.e_precision = self._precision(lg, "fp16")
                    self.e_device = self._w(
                        gr.Dropdown, "util.device", lg, choices=lambda x: ["cpu", "cuda"], value="cpu"
                    )
                self.e_save = self._w(gr.Textbox, "util.save_to", lg, elem_id="util-extract-save")
                self.e_run = self._button("util.run_extract", lg, "util-extract-run")
                self.e_out = self._result("extract", lg)
            with self.p._tr(
                gr.Tab(t("util.run_caption", lg), id="util-caption"),
                lambda x: {"label": t("util.run_caption", x)},
            ):
                self.c_images = self._w(gr.Textbox, "util.images", lg, elem_id="util-caption-images")
                with gr.Row():
                    self.c_method = self._w(
                        gr.Dropdown,
                        "util.method",
                        lg,
                        choices=lambda x: ["wd14", "florence2", "blip"],
                        value="wd14",
                    )
                    self.c_model = self._w(gr.Textbox, "util.caption_model", lg)
                    self.c_threshold = self._w(
                        gr.Slider, "util.threshold", lg, minimum=0.05, maximum=1.0, step=0.01, value=0.35
                    )
                with gr.Row():
                    self.c_prefix = self._w(gr.Textbox, "util.prefix", lg)
                    self.c_ext = self._w(gr.Textbox, "util.caption_extension", lg, value=".txt")
                    self.c_overwrite = self._w(gr.Checkbox, "util.overwrite", lg, value=False)
                self.c_run = self._button("util.run_caption", lg, "util-caption-run")
                self.c_out = self._result("caption", lg)

    # ---- handlers -----------------------------------------------------------------------
    def _run(self, name: str, lang: str, options: dict[str, Any]) -> tuple[str, str, Any]:
        """(message, report, download button) of one utility run."""
        outcome = self.p.c.api.run_tool(name, **options)
        if not outcome["ok"]:
            return "⚠️ " + outcome["text"], "", gr.update(visible=False)
        served = self.p.c.downloadable([outcome["path"]]) if outcome.get("path") else []
        offer = gr.update(value=served[0], visible=True) if served else gr.update(visible=False)
        return t("util.done", lang), outcome["text"], offer

    def _guard(self, lang: str, build: Callable[[], tuple[str, dict[str, Any]]]) -> tuple[str, str, Any]:
        try:
            name, options = build()
        except BadInput as err:
            return "⚠️ " + str(err), "", gr.update(visible=False)
        return self._run(name, lang, options)

    def on_verify(self, lang: str, file: str, progress: Any = None) -> tuple[str, str, Any]:
        return self._guard(lang, lambda: ("verify", {"file": str(file or "").strip()}))

    def on_resize(
        self, lang: str, model: str, rank: Any, conv: Any, method: str, param: Any, precision: str,
        device: str, save_to: str, progress: Any = None,
    ) -> tuple[str, str, Any]:  # fmt: skip
        def build() -> tuple[str, dict[str, Any]]:
            options = {
                "model": str(model or "").strip(),
                "new_rank": _int(rank, "--new_rank", lang),
                "new_conv_rank": _int(conv, "--new_conv_rank", lang, zero_is_none=True),
                "dynamic_method": method or None,
                "dynamic_param": float(param) if method and param else None,
                "save_precision": precision or None,
                "device": device,
                "save_to": str(save_to or "").strip(),
                "verbose": True,  # each module's kept rank and retention in the report
            }
            return "resize", options

        return self._guard(lang, build)

    def on_merge(
        self, lang: str, models: str, ratios: str, mode: str, rank: Any, base: str, precision: str,
        save_to: str, progress: Any = None,
    ) -> tuple[str, str, Any]:  # fmt: skip
        def build() -> tuple[str, dict[str, Any]]:
            options: dict[str, Any] = {
                "models": parse_models(models),
                "ratios": parse_ratios(ratios, lang),
                "save_precision": precision or None,
                "save_to": str(save_to or "").strip(),
            }
            if mode == "svd":  # an empty rank is 0, which the engine refuses naming --new_rank
                options["new_rank"] = _int(rank, "--new_rank", lang) or 0
            elif mode == "checkpoint":
                options["base_model"] = str(base or "").strip() or " "  # empty: the engine names the option
            return "merge", options

        return self._guard(lang, build)

    def on_extract(
        self, lang: str, org: str, tuned: str, dim: Any, conv: Any, clamp: Any, precision: str, device: str,
        save_to: str, progress: Any = None,
    ) -> tuple[str, str, Any]:  # fmt: skip
        def build() -> tuple[str, dict[str, Any]]:
            options = {
                "model_org": str(org or "").strip(),
                "model_tuned": str(tuned or "").strip(),
                "dim": _int(dim, "--dim", lang),
                "conv_dim": _int(conv, "--conv_dim", lang, zero_is_none=True),
                "clamp_quantile": float(clamp if clamp not in (None, "") else 0.99),
                "save_precision": precision or "fp16",
                "device": device,
                "save_to": str(save_to or "").strip(),
            }
            return "extract", options

        return self._guard(lang, build)

    def on_caption(
        self, lang: str, images: str, method: str, model: str, threshold: Any, prefix: str, ext: str,
        overwrite: bool, progress: Any = None,
    ) -> tuple[str, str, Any]:  # fmt: skip
        def build() -> tuple[str, dict[str, Any]]:
            options = {
                "images": str(images or "").strip(),
                "method": method,
                "model": str(model or "").strip() or None,
                "threshold": float(threshold),
                "prefix": prefix or "",
                "caption_extension": ext or ".txt",
                "overwrite": bool(overwrite),
            }
            return "caption", options

        return self._guard(lang, build)

    # ---- wiring -------------------------------------------------------------------------
    def connect(self) -> None:
        lang = self.p.lang
        opts: dict[str, Any] = {"api_visibility": "private"}
        pairs = [
            (self.v_run, self._progressed(self.on_verify), [self.v_file], self.v_out),
            (
                self.r_run,
                self._progressed(self.on_resize),
                [
                    self.r_model,
                    self.r_rank,
                    self.r_conv,
                    self.r_method,
                    self.r_param,
                    self.r_precision,
                    self.r_device,
                    self.r_save,
                ],
                self.r_out,
            ),
            (
                self.m_run,
                self._progressed(self.on_merge),
                [
                    self.m_models,
                    self.m_ratios,
                    self.m_mode,
                    self.m_rank,
                    self.m_base,
                    self.m_precision,
                    self.m_save,
                ],
                self.m_out,
            ),
            (
                self.e_run,
                self._progressed(self.on_extract),
                [
                    self.e_org,
                    self.e_tuned,
                    self.e_dim,
                    self.e_conv,
                    self.e_clamp,
                    self.e_precision,
                    self.e_device,
                    self.e_save,
                ],
                self.e_out,
            ),
            (
                self.c_run,
                self._progressed(self.on_caption),
                [
                    self.c_images,
                    self.c_method,
                    self.c_model,
                    self.c_threshold,
                    self.c_prefix,
                    self.c_ext,
                    self.c_overwrite,
                ],
                self.c_out,
            ),
        ]
        for button, handler, inputs, outputs in pairs:
            button.click(handler, [lang, *inputs], list(outputs), **opts)

    @staticmethod
    def _progressed(handler: Callable[..., Any]) -> Callable[..., Any]:
        """`handler` with Gradio's progress bar following the engine's tqdm bars."""

        def run(*args: Any, progress: Any = gr.Progress(track_tqdm=True)) -> Any:  # noqa: B008 (Gradio's way)
            return handler(*args, progress=progress)

        return run


def utilities_tab(page: Any, lg: str) -> UtilitiesPanel:
    """The Utilities tab (call inside the page's gr.Tabs), built and wired."""
    panel = UtilitiesPanel(page)
    with page._tr(
        gr.Tab(tab_name("Utilities", lg), id="Utilities"), lambda x: {"label": tab_name("Utilities", x)}
    ):
        panel.render(lg)
    panel.connect()
    return panel
