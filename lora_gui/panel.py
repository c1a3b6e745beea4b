"""The run panel's content from a `RunState`: progress line, loss curve, log, error text,
sample images, and how to continue a stopped run. Everything in the page's language."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lora_gui.i18n import field_label, group_name, t, tab_name
from lora_gui.run_state import RunState
from lora_gui.values import md_text
from trainer.config import FIELDS, FieldSpec

MAX_POINTS = 600  # the loss curve is thinned to this many points per series
MAX_SAMPLES = 24  # sample images shown at once (Gradio copies each one it serves)


def format_duration(seconds: float | None) -> str:
    """3725 -> '1h 02m 05s', 65 -> '1m 05s', 9 -> '9s'."""
    if seconds is None or seconds < 0:
        return "?"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h {m:02d}m {sec:02d}s"
    if m:
        return f"{m}m {sec:02d}s"
    return f"{sec}s"


def format_speed(it_per_s: float | None) -> str:
    """it/s, or s/it when a step takes longer than a second (as a progress bar shows it)."""
    if not it_per_s:
        return "? it/s"
    if it_per_s < 1:
        return f"{1 / it_per_s:.2f} s/it"
    return f"{it_per_s:.2f} it/s"


def progress_markdown(state: RunState, lang: str) -> str:
    """What is happening now, in one or two lines."""
    if state.status == "idle":
        return t("run.idle", lang)
    lines: list[str] = []
    if state.step or state.total_steps:
        known = state.active and state.eta_s is not None
        eta = t("run.eta", lang, eta=format_duration(state.eta_s)) if known else ""
        lines.append(
            t(
                "run.step_line",
                lang,
                step=state.step,
                total=state.total_steps or "?",
                percent=state.percent,
                epoch=state.epoch,
                epochs=state.epochs or "?",
                speed=format_speed(state.it_per_s),
                eta=eta,
            ).rstrip(", 、")
        )
    if state.status == "running" and not state.step:
        lines.append(t("run.starting", lang))
    elif state.status == "running":
        lines.insert(0, f"**{t('run.running', lang)}**")
    elif state.status == "stopping":
        lines.append(t("run.stopping", lang))
    elif state.status == "finished":
        lines.append("✅ " + t("run.finished", lang, path=state.final_path or (state.saved or ["?"])[-1]))
    elif state.status == "stopped":
        lines.append(
            "⏹️ "
            + t("run.stopped", lang, step=state.step, path=state.final_path or (state.saved or ["-"])[-1])
        )
        lines.append(resume_hint(state, lang))
    return "  \n".join(lines)


def _where(spec: FieldSpec, lang: str) -> str:
    return f"{tab_name(spec.tab, lang)} > {group_name(spec.group, lang)}"


def resume_hint(state: RunState, lang: str, fields: Mapping[str, FieldSpec] = FIELDS) -> str:
    """How to continue a stopped run: the Resume value when its training state was saved,
    else how to have one saved next time."""
    resume = fields["resume"]
    if state.state_dir:
        path = state.state_dir.replace("`", "'")
        return t(
            "run.resume_with", lang, field=field_label(resume, lang), where=_where(resume, lang), path=path
        )
    save = fields["save_state"]
    return t(
        "run.resume_no_state",
        lang,
        field=field_label(save, lang),
        where=_where(save, lang),
        weights=field_label(fields["network_weights"], lang),
    )


def error_markdown(state: RunState, lang: str) -> str:
    """The error as a message saying what to do (empty when there is none)."""
    if not state.error:
        return ""
    e = state.error
    message, hint = md_text(e.get("message", "")), md_text(e.get("hint") or "")
    if e.get("key"):  # the GUI's own error: said from the table
        data: dict[str, Any] = dict(e.get("data") or {})
        hint_key = data.pop("hint_key", "")
        if "what" in data:
            data["what"] = t(data["what"], lang)
        message = md_text(t(e["key"], lang, **data))
        hint = md_text(t(hint_key, lang)) if hint_key else hint
    lines = ["❌ **" + t("run.failed", lang, message=message) + "**"]
    if hint:
        lines.append(t("run.hint", lang, hint=hint))
    if e.get("log_file"):
        lines.append(t("run.log_file", lang, path=md_text(e["log_file"])))
    return "\n\n".join(lines)


def loss_frame(state: RunState, lang: str = "en") -> pd.DataFrame:
    """The loss curve as long-format rows (step, loss, series) for gr.LinePlot; the series
    are named in `lang` (the chart's legend shows them)."""
    points = state.losses
    if len(points) > MAX_POINTS:
        stride = -(-len(points) // MAX_POINTS)
        points = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
    loss, average = t("chart.loss", lang), t("chart.average", lang)
    rows = [(step, value, loss) for step, value, _ in points]
    rows += [(step, avg, average) for step, _, avg in points]
    frame = pd.DataFrame(rows, columns=["step", "loss", "series"])
    # Typed even when empty, so the plot treats step and loss as numbers, not categories.
    return frame.astype({"step": "int64", "loss": "float64", "series": "str"})


def loss_plot(state: RunState, lang: str) -> pd.DataFrame | None:
    """What the Loss chart shows: None until the first loss arrives. The chart fixes its
    series (and colours) from the first table it draws, so it is never given an empty
    one: a chart built from no rows draws axes and no line for the rest of the page."""
    return loss_frame(state, lang) if state.losses else None


def chart_labels(lang: str) -> dict[str, str]:
    """The Loss chart's axis and legend titles in `lang`."""
    return {
        "x_title": t("chart.step", lang),
        "y_title": t("chart.loss", lang),
        "color_title": t("chart.series", lang),
    }


def logs_text(state: RunState, lang: str = "en", last: int = 80) -> str:
    """The newest log lines in `lang`."""
    if state.lines:
        return "\n".join(line.text(lang) for line in state.lines[-last:])
    return "\n".join(state.logs[-last:])


def files_note(state: RunState, lang: str) -> str:
    """Under the saved files: where all of them are, and that the list deletes nothing."""
    if not state.saved or not state.output_dir.strip():
        return ""
    return t("run.files_note", lang, folder=state.output_dir.replace("`", "'"))


def inside(path: str | Path, folder: str | Path) -> bool:
    """True when `path` (links resolved) lies inside `folder`: the only files we serve."""
    if not str(folder).strip():
        return False
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except (ValueError, OSError):
        return False
    return True


def sample_items(state: RunState, lang: str, limit: int = MAX_SAMPLES) -> list[tuple[str, str]]:
    """The run's sample images as gallery items (resolved path, caption), newest step first
    and a step's prompts in order; only existing files inside the run's output folder."""
    ordered = sorted(
        state.samples, key=lambda x: (int(x.get("step") or 0), -int(x.get("index") or 0)), reverse=True
    )
    items: list[tuple[str, str]] = []
    for sample in ordered:
        path = Path(str(sample.get("path", "")))
        if not path.is_file() or not inside(path, state.output_dir):
            continue
        items.append(
            (
                str(path.resolve()),
                t("run.sample_caption", lang, step=sample.get("step", 0), prompt=sample.get("prompt", "")),
            )
        )
        if len(items) >= limit:
            break
    return items
