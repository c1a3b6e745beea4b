"""The GPU memory and time estimate under the dataset summary (Folders tab), with the
"GPU memory (GB)" field it is measured against.

The estimate is the trainer's own (`api.estimate`: the run's model, LoRA, optimizer and
step on shape-only tensors; nothing loads), for the form's settings and the dry-run plan's
largest bucket. It follows every change of the form, the last change winning; the engine
keeps each measured step by model and settings, so a setting changed back is instant.
The field is set to this machine's GPU size, when it has one, as the page opens
(`api.gpu_memory_gib`; building the page imports no torch).
`page` is the lora_gui.app.Page.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import gradio as gr

from lora_gui.i18n import field_label, t
from lora_gui.values import md_text, validate_form
from trainer.config import FIELDS

PRIVATE = {"api_visibility": "private"}
# The engine's verdicts (trainer.estimate.fit: "fits", "tight", else it does not fit).
VERDICT_KEYS = {"fits": "estimate.fits", "tight": "estimate.tight"}
ICONS = {"fits": "✅", "tight": "⚠️"}


def duration(seconds: float, lang: str) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return t("estimate.seconds", lang, n=max(1, round(seconds)))
    if minutes < 60:
        return t("estimate.minutes", lang, n=minutes)
    return t("estimate.hours", lang, h=minutes // 60, m=minutes % 60)


def change_text(settings: Mapping[str, Any], lang: str) -> str:
    """A change of settings in the page's words: each field's label and its new value."""
    return ", ".join(
        f"**{field_label(FIELDS[k], lang) if k in FIELDS else k}** = `{v}`" for k, v in settings.items()
    )


def estimate_markdown(est: Mapping[str, Any], lang: str) -> str:
    """The estimate (its to_json) as the page shows it, in `lang`."""
    lines = [f"**{t('estimate.title', lang)}**", ""]
    peak = t("estimate.peak", lang, peak=est["peak_vram_gib"])
    vram, verdict = est.get("vram_gib"), est.get("verdict")
    if vram and verdict:
        said = t(VERDICT_KEYS.get(verdict, "estimate.no_fit"), lang, vram=vram)
        peak = f"{ICONS.get(verdict, '❌')} {peak}: {said}"
    lines.append(f"- {peak}")
    parts = est.get("breakdown_gib") or {}
    lines.append(
        "- "
        + t(
            "estimate.parts",
            lang,
            weights=parts.get("weights", 0.0),
            activations=parts.get("activations", 0.0),
            optimizer=parts.get("optimizer_state", 0.0),
            gradients=parts.get("gradients", 0.0),
            caches=parts.get("caches", 0.0),
        )
    )
    recommended = est.get("recommended")
    for tried in est.get("advice") or []:
        if tried.get("change") == recommended:
            change = change_text(tried.get("settings") or {}, lang)
            lines.append("- " + t("estimate.change", lang, change=change, peak=tried["peak_vram_gib"]))
    if verdict and verdict not in VERDICT_KEYS and not recommended:
        lines.append("- " + t("estimate.no_change", lang))
    run = est.get("run_seconds")
    time_line = t("estimate.step", lang, gpu=est.get("gpu", ""), s=est["seconds_per_step"])
    if run:
        time_line += " " + t("estimate.run", lang, run=duration(run, lang))
    lines += [f"- {time_line}", "", f"*{t('estimate.note', lang)}*"]
    return "\n".join(lines)


class EstimatePanel:
    """The estimate never runs beside training in this process: it swaps a few library
    hooks while it measures (trainer.estimate.fake_run), so Start and Run queue take
    `lock` (waiting for an estimate under way), and no estimate starts while a run or the
    queue is going."""

    def __init__(self, page: Any):
        self.p = page
        self.lock = threading.Lock()

    def training(self) -> bool:
        queue = getattr(self.p, "queue", None)
        return bool(self.p.c.runner.running or (queue is not None and queue.worker.running()))

    def wait_idle(self, timeout: float) -> None:
        """Until no estimate is under way (at the app's exit), at most `timeout` seconds."""
        if self.lock.acquire(timeout=timeout):
            self.lock.release()

    def render(self, lg: str) -> None:
        p = self.p
        with gr.Row(equal_height=False):
            self.vram = p._tr(
                gr.Number(
                    value=None,  # this machine's GPU, once the page is open (fill_vram)
                    label=t("estimate.vram", lg),
                    info=t("estimate.vram.info", lg),
                    minimum=0,
                    maximum=1024,
                    elem_id="gpu-vram",
                    scale=1,
                    min_width=200,
                ),
                lambda x: {"label": t("estimate.vram", x), "info": t("estimate.vram.info", x)},
            )
            with gr.Column(scale=3):
                self.md = gr.Markdown("", elem_id="run-estimate")

    def fill_vram(self, current: Any) -> Any:
        """The field at this machine's GPU size when the page opens (asking imports torch,
        which the app's start does not wait for); a value already there stays."""
        if current not in (None, ""):
            return gr.skip()
        try:
            here = self.p.c.api.gpu_memory_gib()
        except Exception:  # noqa: BLE001 - no GPU information: the user types it
            here = None
        return round(here, 1) if here else gr.skip()

    def on_change(self, data: Mapping[Any, Any]) -> str:
        """The estimate of the form as it is now ("" while the settings are not complete)."""
        p = self.p
        lang = data[p.lang]
        if self.training():
            return t("estimate.paused", lang)
        values = p.events.values(data)
        cfg, problems = validate_form(values)
        if cfg is None or not cfg.pretrained_model_name_or_path.strip():
            return ""
        vram = data[self.vram]
        try:
            vram = float(vram) if vram not in (None, "") and float(vram) > 0 else None
        except (TypeError, ValueError):
            vram = None
        try:
            plan = p.c.api.make_plan(cfg)
        except Exception:  # noqa: BLE001 - the summary says what is wrong with the dataset
            plan = None
        with self.lock:
            if self.training():
                return t("estimate.paused", lang)
            try:
                est = p.c.api.estimate(cfg, vram, plan=plan)
            except Exception as exc:  # noqa: BLE001 - the model check above says what is wrong
                return t("estimate.none", lang, reason=md_text(str(exc) or type(exc).__name__))
        return estimate_markdown(est.to_json() if hasattr(est, "to_json") else est, lang)

    def connect(self, demo: gr.Blocks) -> None:
        p = self.p
        demo.load(self.fill_vram, self.vram, self.vram, preprocess=False, **PRIVATE)
        widgets = list(p.form.widgets.values())
        # What the user changes (.input: not the 80 updates of a preset load, which changes
        # the summary once), the page opening, the GPU size and the language.
        triggers = [
            demo.load,
            *(w.input for w in widgets),
            p.summary_md.change,
            self.vram.change,
            p.lang.change,
        ]
        gr.on(
            triggers,
            self.on_change,
            {*widgets, p.lang, self.vram},
            self.md,
            trigger_mode="always_last",
            show_progress="minimal",
            preprocess=False,
            concurrency_limit=1,
            concurrency_id="estimate",
            **PRIVATE,
        )
