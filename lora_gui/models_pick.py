"""Model Quick Pick: the common base models by Hugging Face id and the user's models folder.

A pick fills the model path and, for the ids below, the v2 / v_parameterization / SDXL
boxes (an id that is not downloaded yet cannot be detected). The models folder is the
user's (a field under the Quick Pick, `--models-dir`, remembered in settings.json of the
app's settings folder, ~/.lora_gui); its .safetensors / .ckpt files and diffusers folders
are offered by name. Imports no engine module: plain values in, plain values out.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from lora_gui.i18n import t

MODEL_SUFFIXES = (".safetensors", ".ckpt")
MAX_FOLDER_MODELS = 300  # files offered from the models folder (sorted by name)
SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class KnownModel:
    """A base model by its Hugging Face id, with the Source Model boxes it needs."""

    repo_id: str
    name: str
    v2: bool = False
    v_parameterization: bool = False
    sdxl: bool = False

    def flags(self) -> dict[str, bool]:
        return {"v2": self.v2, "v_parameterization": self.v_parameterization, "sdxl": self.sdxl}


KNOWN_MODELS = (
    KnownModel("stable-diffusion-v1-5/stable-diffusion-v1-5", "SD 1.5"),
    KnownModel("stabilityai/stable-diffusion-2-1", "SD 2.1 768 v", v2=True, v_parameterization=True),
    KnownModel("stabilityai/stable-diffusion-2-1-base", "SD 2.1 512 base", v2=True),
    KnownModel("stabilityai/stable-diffusion-xl-base-1.0", "SDXL base 1.0", sdxl=True),
    KnownModel("cagliostrolab/animagine-xl-3.1", "Animagine XL 3.1 (SDXL)", sdxl=True),
    KnownModel("RunDiffusion/Juggernaut-XL-v9", "Juggernaut XL v9 (SDXL)", sdxl=True),
    KnownModel("SG161222/RealVisXL_V4.0", "RealVisXL V4.0 (SDXL)", sdxl=True),
    KnownModel("Lykon/dreamshaper-xl-1-0", "DreamShaper XL 1.0 (SDXL)", sdxl=True),
)
BY_ID = {m.repo_id: m for m in KNOWN_MODELS}


def folder_models(folder: str | Path) -> list[Path]:
    """The base models in `folder` and its sub-folders (one level): .safetensors / .ckpt
    files and diffusers folders (with model_index.json), by name; hidden ones are left out."""
    text = str(folder).strip()
    if not text:
        return []
    root = Path(text).expanduser()
    if not root.is_dir():
        return []
    found: list[Path] = []
    for depth, base in [(0, root)] + [(1, p) for p in _subfolders(root)]:
        if depth and (base / "model_index.json").is_file():
            found.append(base)
            continue
        try:
            entries = sorted(base.iterdir(), key=lambda p: p.name.lower())
        except OSError:
            continue
        found += [p for p in entries if p.suffix.lower() in MODEL_SUFFIXES and _visible(p) and p.is_file()]
    return sorted(found, key=lambda p: str(p.relative_to(root)).lower())[:MAX_FOLDER_MODELS]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _subfolders(root: Path) -> list[Path]:
    try:
        return sorted((p for p in root.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name.lower())
    except OSError:
        return []


class Settings:
    """The app's remembered settings (settings.json in the settings folder): the models folder."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / SETTINGS_FILE

    def read(self) -> dict:
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def write(self, **changes: object) -> None:
        """Merge `changes` into the file (written whole to a temporary name, then renamed)."""
        data = {**self.read(), **changes}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


class ModelChoices:
    """What the Quick Pick offers: custom, the demo model, the known ids, the models folder.

    One per app (the models folder is a setting of the app, not of a browser tab)."""

    def __init__(self, demo_model: str, settings: Settings, models_dir: str | None = None):
        self.demo_model = demo_model
        self.settings = settings
        remembered = settings.read().get("models_dir", "")
        self.models_dir = models_dir if models_dir is not None else str(remembered or "")

    def set_models_dir(self, folder: str) -> str | None:
        """Use and remember `folder` ("" forgets it); returns a problem key, or None."""
        text = folder.strip()
        if text and not Path(text).expanduser().is_dir():
            return "models_dir.missing"
        if text != self.models_dir:
            self.models_dir = text
            try:
                self.settings.write(models_dir=text)
            except OSError:
                return "models_dir.not_saved"
        return None

    def choices(self, lang: str) -> list[tuple[str, str]]:
        out = [(t("quick_pick.custom", lang), "custom"), (t("quick_pick.demo", lang), self.demo_model)]
        out += [(t("quick_pick.hub", lang, name=m.name, id=m.repo_id), m.repo_id) for m in KNOWN_MODELS]
        root = Path(self.models_dir).expanduser() if self.models_dir else None
        for path in folder_models(self.models_dir):
            shown = path.relative_to(root).as_posix() if root else path.name
            out.append((t("quick_pick.file", lang, name=shown), str(path)))
        return out

    def pick_for(self, path: str, lang: str = "en") -> str:
        """The Quick Pick entry that shows `path` ("custom" when none does)."""
        return path if path and path in {v for _, v in self.choices(lang)} else "custom"


def flags_for(pick: str) -> dict[str, bool]:
    """The v2 / v_parameterization / SDXL boxes a known id sets (empty for anything else:
    the model check sets them from the model itself)."""
    known = BY_ID.get(pick)
    return known.flags() if known else {}
