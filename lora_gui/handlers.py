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
from lora_gui.i18n import t
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
from lora_gui.summary import dataset_summary, model_status
from lora_gui.values import problems_markdown, validate_form
from trainer.config import FIELDS, FieldSpec, Problem

MAX_DOWNLOADS = 4  # saved files offered for download at once (newest first to go)


@dataclass
class StartOutcome:
    """What pressing Start did: started or not, the message, the problems that blocked it."""

    started: bool
    message: str
    problems: list[Any] = field(default_factory=list)


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

    def preset_message(self, name: str, loaded: LoadedPreset, lang: str) -> str:
        lines = [t("preset.loaded", lang, name=name)]
        if loaded.notes:
            lines.append(f"**{t('preset.notes', lang)}**\n\n" + "\n".join(f"- {n}" for n in loaded.notes))
        return "\n\n".join(lines)

    def save_preset(self, values: Mapping[str, Any], name: str, lang: str) -> Path:
        """Save the form to the user folder; raises PresetError with a message."""
        return save_user_preset(values, name, self.user_dir, lang)

    # ---- the run ------------------------------------------------------------------------
    def start(self, values: Mapping[str, Any], lang: str) -> StartOutcome:
        """Validate, run the preflight checks, then start; lists every problem otherwise."""
        if self.runner.running:
            return StartOutcome(False, "⚠️ " + t("run.busy", lang))
        cfg, problems = validate_form(values)
        warnings: list[str] = []
        if cfg is not None:
            try:
                problems, warnings = self.api.preflight(cfg)
                problems = list(problems)
            except Exception as exc:  # noqa: BLE001 - a message, never a traceback
                problems = [Problem("preflight", str(exc) or type(exc).__name__)]
        if problems:
            text = f"❌ **{t('run.not_started', lang)}**\n\n" + problems_markdown(problems, lang, self.fields)
            return StartOutcome(False, text, problems)
        if not self.runner.start(cfg):
            return StartOutcome(False, "⚠️ " + t("run.busy", lang))
        message = ""
        if warnings:
            message = f"{t('run.warnings', lang)}\n\n" + "\n".join(f"- {w}" for w in warnings)
        return StartOutcome(True, message)

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
