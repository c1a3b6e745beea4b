"""What the Folders and Source Model tabs say about the current values, as Markdown.

The dataset summary is the trainer's own dry-run plan (`api.make_plan`: the dataset
resolved once, a dataset TOML included, then planned), shown as the user types: folders
with repeats, images, missing captions, skipped files and why, buckets, steps, the files
that will be saved and the plan's advice. The model check is `api.detect_model`. Neither
loads a model, so both stay instant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from lora_gui.i18n import t
from lora_gui.values import problems_markdown, validate_form
from trainer.config import FIELDS, FieldSpec, TrainingConfig

MAX_LISTED = 20  # skipped files and warnings listed one by one before "... and N more"


def code(text: Any) -> str:
    """`text` as a Markdown code span (paths and folder names keep their underscores)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def _as_dict(plan: Any) -> dict[str, Any]:
    if isinstance(plan, Mapping):
        return dict(plan)
    return dict(plan.to_json())


def _listed(items: Sequence[str]) -> list[str]:
    lines = [f"- {item}" for item in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        lines.append(f"- ... (+{len(items) - MAX_LISTED})")
    return lines


def _save_name(entry: Any) -> str:
    if isinstance(entry, Mapping):
        entry = entry.get("path") or entry.get("name") or entry.get("file") or entry
    return code(str(entry).replace("\\", "/").rsplit("/", 1)[-1])


def plan_markdown(plan: Any, lang: str) -> str:
    """A plan (Plan or its to_json() dict) as the Folders tab's summary."""
    p = _as_dict(plan)
    lines = [
        t(
            "summary.totals",
            lang,
            images=p.get("images", 0),
            reg=p.get("reg_images", 0),
            steps_per_epoch=p.get("steps_per_epoch", 0),
            epochs=p.get("epochs", 0),
            total_steps=p.get("total_steps", 0),
        ),
        "",
    ]
    if p.get("image_repeats"):
        lines += [t("summary.repeated", lang, n=p["image_repeats"]), ""]
    subsets = p.get("subsets") or []
    if subsets:
        lines += [
            (
                f"| {t('summary.folder', lang)} | {t('summary.repeats', lang)} | "
                f"{t('summary.images', lang)} | {t('summary.no_caption', lang)} |"
            ),
            "|---|---:|---:|---:|",
        ]
        for sub in subsets:
            reg = f" {t('summary.reg', lang)}" if sub.get("is_reg") or sub.get("reg") else ""
            folder = str(sub.get("folder", "")).replace("\\", "/").rsplit("/", 1)[-1]
            lines.append(
                f"| {code(folder)}{reg} | {sub.get('repeats', '')} | "
                f"{sub.get('images', '')} | {sub.get('missing_captions', 0)} |"
            )
        lines.append("")
    buckets = p.get("buckets") or []
    if buckets:
        parts = [f"{b['resolution'][0]}x{b['resolution'][1]}: {b.get('count', 0)}" for b in buckets]
        lines += [f"**{t('summary.buckets', lang)}**: " + " · ".join(parts), ""]
    saves = p.get("saves") or []
    if saves:
        lines += [f"**{t('summary.saves', lang)}**: " + ", ".join(_save_name(s) for s in saves), ""]
    skipped = p.get("skipped") or []
    if skipped:
        lines.append(f"**{t('summary.skipped', lang)}** ({len(skipped)}):")
        lines += _listed(
            [
                f"{code(s.get('path', ''))}: {s.get('reason', '')}" if isinstance(s, Mapping) else str(s)
                for s in skipped
            ]
        )
        lines.append("")
    warnings = [str(w) for w in p.get("warnings") or []]
    if warnings:
        lines.append(f"**{t('summary.warnings', lang)}**:")
        lines += _listed(warnings)
    return "\n".join(lines).strip()


def _planning_config(values: Mapping[str, Any]) -> TrainingConfig | None:
    """The values as a config for planning even when a rule between settings (an empty
    model path, say) blocks training; None when a value itself is unusable."""
    try:
        return TrainingConfig(**{k: v for k, v in values.items() if k in FIELDS})
    except (ValidationError, TypeError, ValueError):
        return None


def dataset_summary(
    values: Mapping[str, Any], api: Any, lang: str, fields: Mapping[str, FieldSpec] = FIELDS
) -> str:
    """The Folders tab's live summary for the current values.

    Problems come first (they block Start); the plan follows whenever the image folder is
    set and the values can be planned at all."""
    cfg, problems = validate_form(values)
    parts = [f"### {t('summary.title', lang)}"]
    if problems:
        parts.append(f"**{t('summary.fix_first', lang)}**\n\n" + problems_markdown(problems, lang, fields))
    plannable = cfg or _planning_config(values)
    has_data = any(str(values.get(k, "")).strip() for k in ("train_data_dir", "dataset_config"))
    if plannable is None or not has_data:
        if not has_data:
            parts.append(t("summary.choose_folder", lang))
        return "\n\n".join(parts)
    try:
        parts.append(plan_markdown(api.make_plan(plannable), lang))
    except Exception as exc:  # noqa: BLE001 - DatasetError and anything else: a message, never a traceback
        parts.append("⚠️ " + t("summary.unavailable", lang, message=str(exc) or type(exc).__name__))
    return "\n\n".join(parts)


def model_status(path: str, api: Any, lang: str) -> tuple[str, Any]:
    """(Markdown under the model path, the detected ModelInfo or None)."""
    if not str(path or "").strip():
        return t("model.empty", lang), None
    try:
        info = api.detect_model(str(path).strip())
    except Exception as exc:  # noqa: BLE001 - ModelLoadError says what to do; anything else too
        return "⚠️ " + t("model.problem", lang, message=str(exc) or type(exc).__name__), None
    message = str(getattr(info, "message", "") or "")
    label = str(getattr(info, "summary", "") or "") or message or str(info)
    text = "✅ " + t("model.found", lang, message=f"**{label}**")
    if message and message != label:  # the path, and advice such as SD2's v-prediction note
        text += "  \n" + message
    return text, info
