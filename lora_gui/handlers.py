"""What the page's buttons and fields do, as plain functions of plain values.

`Controller` knows nothing of Gradio components: it takes the form's values as a dict and
returns text, so tests drive it without a server and `app.py` only wires it to widgets.
The trainer is reached through an injected api object (`trainer.api` in the app, a fake
in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lora_gui.downloads import ModelDownloads
from lora_gui.i18n import LANGS, field_label, t
from lora_gui.panel import sample_items
from lora_gui.presets import (
    DEFAULT_USER_DIR,
    SHIPPED_DIR,
    LoadedPreset,
    list_presets,
    read_preset,
    save_user_preset,
)
from lora_gui.runner import Runner, RunState
from lora_gui.summary import dataset_summary, model_label, model_status, planning_config
from lora_gui.values import md_text, problems_markdown, validate_form
from trainer.config import FIELDS, FieldSpec, Problem, TrainingConfig

MAX_DOWNLOADS = 4  # saved files offered for download at once (newest first to go)


@dataclass
class StartOutcome:
    """What pressing Start did: started or not, the message, the problems that blocked it;
    `said`: the message in every language (a language switch says it again)."""

    started: bool
    message: str
    problems: list[Any] = field(default_factory=list)
    said: dict[str, str] = field(default_factory=dict)


def outcome(
    started: bool, lang: str, say: Callable[[str], str], problems: list[Any] | None = None
) -> StartOutcome:
    said = {lg: say(lg) for lg in LANGS}
    return StartOutcome(started, said[lang], problems or [], said)


class Controller:
    """The page's behaviour: checks, presets, start and stop of the one run."""

    def __init__(
        self,
        api: Any,
        runner: Runner | None = None,
        *,
        fields: Mapping[str, FieldSpec] = FIELDS,
        user_dir: Path = DEFAULT_USER_DIR,
        shipped_dir: Path = SHIPPED_DIR,
        allow_file: Callable[[str], None] | None = None,
    ):
        self.api = api
        self.runner = runner or Runner(api)
        self.fields = fields
        self.user_dir = Path(user_dir)
        self.shipped_dir = Path(shipped_dir)
        self._allow_file = allow_file
        self.downloads = ModelDownloads(api)  # a Hugging Face id is fetched before its run

    # ---- live checks --------------------------------------------------------------------
    def problems(self, values: Mapping[str, Any]) -> list[Problem]:
        """Every validation problem of the current values (empty when valid)."""
        return validate_form(values)[1]

    def summary(self, values: Mapping[str, Any], lang: str) -> str:
        return dataset_summary(values, self.api, lang, self.fields)

    def model(self, path: str, lang: str) -> tuple[str, dict[str, bool]]:
        """(status Markdown, field values implied by the detected architecture).

        v2 and SDXL follow the detected family; v_parameterization is only switched on when
        the model's own scheduler says v-prediction (it cannot be read from the weights, so
        a user's choice is otherwise kept). Nothing is implied when detection fails; a
        Hugging Face id not downloaded yet says Start will fetch it."""
        if self.downloads.needed(path):
            return "⬇️ " + t("model.will_download", lang, id=str(path).strip()), {}
        message, info = model_status(path, self.api, lang)
        implied: dict[str, bool] = {}
        arch = getattr(info, "arch", "unknown")
        if info is not None and arch in ("sd1", "sd2", "sdxl"):
            # ModelInfo.v2 / .sdxl say what Kohya's checkboxes should say for this model
            implied = {
                "v2": bool(getattr(info, "v2", arch == "sd2")),
                "sdxl": bool(getattr(info, "sdxl", arch == "sdxl")),
            }
            if getattr(info, "v_prediction_hint", False):
                implied["v_parameterization"] = True
        return message, implied

    # ---- presets ------------------------------------------------------------------------
    def preset_choices(self, lang: str) -> list[tuple[str, str]]:
        return list_presets(self.user_dir, lang, self.shipped_dir)

    def load_preset(self, path: str | Path) -> LoadedPreset:
        """Read a preset (ours or a Kohya GUI file); raises PresetError for unreadable files."""
        return read_preset(path, self.fields)

    def save_preset(self, values: Mapping[str, Any], name: str, lang: str) -> Path:
        """Save the form to the user folder; raises PresetError with a message."""
        return save_user_preset(values, name, self.user_dir, lang)

    # ---- the run ------------------------------------------------------------------------
    def start(self, values: Mapping[str, Any], lang: str) -> StartOutcome:
        """Run every check `python -m trainer` runs (settings, dataset, disk, device, model),
        then start; otherwise list every problem at once and start nothing."""
        if self.runner.running:
            return outcome(False, lang, lambda lg: "⚠️ " + t("run.busy", lg))
        self.runner.clear()  # a new Start: the last run's messages go
        cfg, problems = validate_form(values)
        plan, plan_problems = self._plan(cfg or planning_config(values, {p.key for p in problems}))
        warnings: list[str] = []
        if cfg is not None:
            try:
                problems, warnings = self.api.check_start(cfg)  # the dataset's problems included
                plan_problems = []
            except Exception as exc:  # noqa: BLE001 - a message, never a traceback
                problems = [Problem("preflight", str(exc) or type(exc).__name__)]
        problems = list(dict.fromkeys([*problems, *plan_problems]))
        if problems:

            def refused(lg: str) -> str:
                return f"❌ **{t('run.not_started', lg)}**\n\n" + problems_markdown(problems, lg, self.fields)

            return outcome(False, lang, refused, problems)
        model = self._model(cfg)
        if not self.runner.start(cfg, quiet=(str(getattr(model, "message", "")),) if model else ()):
            return outcome(False, lang, lambda lg: "⚠️ " + t("run.busy", lg))
        return outcome(True, lang, lambda lg: self._before_start(cfg, model, plan, warnings, lg))

    def _model(self, cfg: TrainingConfig) -> Any:
        """The detected model (None when detection fails: preflight said why, if it matters)."""
        try:
            return self.api.detect_model(cfg.pretrained_model_name_or_path.strip())
        except Exception:  # noqa: BLE001 - preflight said nothing against it; nothing to add
            return None

    def _plan(self, cfg: TrainingConfig | None) -> tuple[Any, list[Problem]]:
        """(the dry-run plan, []) or (None, the dataset's problem): a missing or badly laid
        out image folder stops Start here, as it stops `python -m trainer`."""
        if cfg is None or not (cfg.train_data_dir.strip() or cfg.dataset_config.strip()):
            return None, []  # an empty folder setting is the settings' own problem
        try:
            return self.api.make_plan(cfg), []
        except Exception as exc:  # noqa: BLE001 - DatasetError and anything else: a message
            key = "dataset_config" if str(cfg.dataset_config).strip() else "train_data_dir"
            return None, [Problem(key, str(exc) or type(exc).__name__)]

    def _before_start(
        self, cfg: TrainingConfig, model: Any, plan: Any, warnings: list[str], lang: str
    ) -> str:
        """What the page says as the run starts.

        Information (the model found, the plan's numbers) and warnings are apart: the
        model's description (which preflight lists with its warnings) is no warning."""
        info: list[str] = []
        quiet: list[str] = []
        if model is not None:
            label = model_label(model, cfg.pretrained_model_name_or_path.strip(), lang)
            info.append(t("run.info_model", lang, model=md_text(label)))
            quiet.append(str(getattr(model, "message", "")))
        if plan is not None:
            p = plan if isinstance(plan, Mapping) else plan.to_json()
            info.append(
                t(
                    "run.info_plan",
                    lang,
                    images=p.get("images", 0),
                    steps=p.get("total_steps", 0),
                    epochs=p.get("epochs", 0),
                )
            )
        lines = [f"**{t('run.info', lang)}**\n\n" + "\n".join(f"- {x}" for x in info)] if info else []
        rest = [w for w in warnings if w not in quiet]
        if rest:
            items = "\n".join(f"- {md_text(t('run.warning', lang, text=w))}" for w in rest)
            lines.append(f"**{t('run.warnings', lang)}**\n\n{items}")
        return "\n\n".join(lines)

    def stop(self, lang: str) -> str:
        if self.runner.stop():
            return t("run.stopping", lang)
        return t("run.not_running", lang)

    def downloadable(self, paths: list[str]) -> list[str]:
        """The newest saved files that exist, each made servable (only those exact files).

        Gradio hashes and copies every file it offers, so a long run of large LoRAs
        offers its newest few; all of them are in the output folder and the log."""
        out = [p for p in paths if Path(p).is_file()][-MAX_DOWNLOADS:]
        if self._allow_file is not None:
            for p in out:
                self._allow_file(str(Path(p).resolve()))
        return out

    def samples(self, state: RunState, lang: str) -> list[tuple[str, str]]:
        """The run's sample images for the gallery (newest first, captioned), each made
        servable like saved files: only those exact files, all inside the output folder."""
        items = sample_items(state, lang)
        if self._allow_file is not None:
            for path, _ in items:
                self._allow_file(path)
        return items


def preset_record(name: str, loaded: LoadedPreset) -> dict[str, Any]:
    """What the page keeps of a loaded preset to say it again in another language."""
    return {"name": name, "notes": loaded.engine_notes(), "unusable": [list(x) for x in loaded.unusable]}


def loaded_message(
    record: Mapping[str, Any] | None, lang: str, fields: Mapping[str, FieldSpec] = FIELDS
) -> str:
    """ "Loaded <name>." with what the file changed and what it could not, in `lang`."""
    if not record:
        return ""
    lines = [t("preset.loaded", lang, name=md_text(record["name"])) + " " + t("preset.kept", lang)]
    notes = [md_text(t("preset.note", lang, text=n)) for n in record.get("notes") or []]
    for key, value, allowed in record.get("unusable") or []:
        spec = fields.get(key)
        label = field_label(spec, lang) if spec else key
        notes.append(
            t("preset.unusable", lang, field=f"**{label}**", value=md_text(value), allowed=md_text(allowed))
        )
    if notes:
        lines.append(f"**{t('preset.notes', lang)}**\n\n" + "\n".join(f"- {n}" for n in notes))
    return "\n\n".join(lines)
