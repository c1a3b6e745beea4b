"""What the Folders and Source Model tabs say about the current values, as Markdown.

The dataset summary is the trainer's own dry-run plan (`api.make_plan`: the dataset
resolved once, a dataset TOML included, then planned), shown as the user types: folders
with repeats, images, missing captions, skipped files and why, buckets, steps, the files
that will be saved and the plan's advice. The model check is `api.detect_model`. Neither
loads a model, so both stay instant.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lora_gui.i18n import t
from lora_gui.values import md_text, problems_markdown, validate_form
from trainer.config import FIELDS, FieldSpec, TrainingConfig

MAX_LISTED = 20  # skipped files and warnings listed one by one before "... and N more"
ARCH_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}


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
                f"{code(s.get('path', ''))}: {md_text(s.get('reason', ''))}"
                if isinstance(s, Mapping)
                else md_text(s)
                for s in skipped
            ]
        )
        lines.append("")
    warnings = [md_text(note_text(n, lang)) for n in plan_notes(p) if n.get("code") != "skipped"]
    if warnings:
        lines.append(f"**{t('summary.warnings', lang)}**:")
        lines += _listed(warnings)
    return "\n".join(lines).strip()


def plan_notes(plan: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The plan's warnings as notes ({"code", "text", ...}); a plan without notes (an older
    engine, a test's fake) has each warning as free text."""
    notes = plan.get("notes")
    if notes is None:
        return [{"code": "text", "text": str(w)} for w in plan.get("warnings") or []]
    return [dict(n) for n in notes]


def note_text(note: Mapping[str, Any], lang: str) -> str:
    """A plan note in `lang`: from the table by its code, else the engine's text behind a
    translated lead-in."""
    data = {k: v for k, v in note.items() if k not in ("code", "text")}
    if note.get("code") != "text":
        try:
            return t(f"advice.{note.get('code')}", lang, **data)
        except (KeyError, IndexError, ValueError):  # a code or a field this table lacks
            pass
    return t("advice.text", lang, text=note.get("text", ""))


def planning_config(values: Mapping[str, Any], unusable: Collection[str] = ()) -> TrainingConfig | None:
    """The values as a config for planning even when a rule between settings (an empty
    model path, say) blocks training; the fields in `unusable` (a learning rate out of
    range) are left at their defaults, so the dataset is still checked. None when another
    value itself is unusable."""
    try:
        return TrainingConfig(**{k: v for k, v in values.items() if k in FIELDS and k not in unusable})
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
    plannable = cfg or planning_config(values)
    has_data = any(str(values.get(k, "")).strip() for k in ("train_data_dir", "dataset_config"))
    if plannable is None or not has_data:
        if not has_data:
            parts.append(t("summary.choose_folder", lang))
        return "\n\n".join(parts)
    try:
        parts.append(plan_markdown(api.make_plan(plannable), lang))
    except Exception as exc:  # noqa: BLE001 - DatasetError and anything else: a message, never a traceback
        parts.append("⚠️ " + t("summary.unavailable", lang, message=md_text(str(exc) or type(exc).__name__)))
    return "\n\n".join(parts)


def size_text(size: int) -> str:
    """Bytes as a download page shows them: "6.9 GB", "1.7 MB"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def model_label(info: Any, path: str, lang: str) -> str:
    """ "SD 1.x (diffusers folder, 13.7 MB)" in `lang`, from the detected ModelInfo's fields
    (the engine's own English summary where the info carries no size)."""
    arch = ARCH_NAMES.get(str(getattr(info, "arch", "")))
    size = int(getattr(info, "size_bytes", 0) or 0)
    if arch is None or not size:
        return str(getattr(info, "summary", "") or getattr(info, "message", "") or info)
    if getattr(info, "format", "") == "single-file":
        ext = Path(str(getattr(info, "local_path", "") or path)).suffix.lower()
        kind = t("model.kind.single", lang) if ext == ".safetensors" else t("model.kind.file", lang, ext=ext)
    elif Path(str(path)).expanduser().exists():
        kind = t("model.kind.diffusers", lang)
    else:
        kind = t("model.kind.hub", lang)
    vpred = t("model.vpred", lang) if getattr(info, "v_prediction_hint", False) else ""
    return t("model.label", lang, arch=arch, vpred=vpred, kind=kind, size=size_text(size))


def model_status(path: str, api: Any, lang: str) -> tuple[str, Any]:
    """(Markdown under the model path, the detected ModelInfo or None)."""
    if not str(path or "").strip():
        return t("model.empty", lang), None
    path = str(path).strip()
    try:
        info = api.detect_model(path)
    except Exception as exc:  # noqa: BLE001 - ModelLoadError says what to do; anything else too
        return "⚠️ " + t("model.problem", lang, message=md_text(str(exc) or type(exc).__name__)), None
    text = "✅ " + t("model.found", lang, message=f"**{md_text(model_label(info, path, lang))}**")
    where = str(getattr(info, "local_path", "") or path)
    text += "  \n" + t("model.path", lang, path=where.replace("`", "'"))
    single = getattr(info, "format", "") == "single-file"
    if single and getattr(info, "arch", "") == "sd2" and not getattr(info, "v_prediction_hint", False):
        text += "  \n" + t("model.sd2_file", lang)
    return text, info
