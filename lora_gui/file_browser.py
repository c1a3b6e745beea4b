"""The folder/file picker's listing: one folder of the machine running the app at a time.

Like the Kohya GUI's folder buttons, but served by the app, so it works from another
computer's browser too (only with --auth: `gui.py` hides it otherwise). It never lists
more than the one folder the user is in; a step down must name an entry of that listing
(no separators, no "..", no hidden names), every folder shown is the real one after
symlinks are resolved, and nothing is read but names, types and sizes. Imports no engine.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

MAX_ENTRIES = 1000  # entries listed per folder (folders first, then files, by name)

# What each path field may take: "dir" folders only, else files with these suffixes
# (None: any file). Model fields also take a diffusers folder ("Use this folder").
KINDS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "pretrained_model_name_or_path": ("any", (".safetensors", ".ckpt")),
    "vae": ("any", (".safetensors", ".ckpt", ".pt")),
    "network_weights": ("file", (".safetensors",)),
    "dataset_config": ("file", (".toml",)),
    "config_path": ("file", (".json",)),
    "models_dir": ("dir", None),
}


def kind_of(name: str, widget: str | None) -> tuple[str, tuple[str, ...] | None]:
    """("dir" | "file" | "any", suffixes) of a path field (by name, else its widget)."""
    if name in KINDS:
        return KINDS[name]
    if widget == "path-dir":
        return "dir", None
    if widget == "path-file":
        return "file", None
    return "any", None


class BrowseError(Exception):
    """A folder that cannot be shown or an entry that is not in it; the message is a key."""


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int = 0


@dataclass
class Listing:
    """One folder's visible entries; `more` counts those left out past MAX_ENTRIES."""

    folder: str
    entries: list[Entry] = field(default_factory=list)
    more: int = 0

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]


def real_folder(text: str, base: Path | None = None) -> Path:
    """The existing folder `text` names (~ expanded, relative to `base` or the working
    folder, symlinks resolved); raises BrowseError("browse.not_folder")."""
    raw = Path(str(text).strip()).expanduser()
    if not str(text).strip():
        raise BrowseError("browse.not_folder")
    if not raw.is_absolute():
        raw = (base or Path.cwd()) / raw
    folder = Path(os.path.realpath(raw))
    if not folder.is_dir():
        raise BrowseError("browse.not_folder")
    return folder


def start_folder(value: str, home: Path | None = None) -> Path:
    """Where the picker opens: the field's folder (a file's own folder; for a path that
    does not exist yet its nearest existing parent), else the home folder."""
    home = home or Path.home()
    text = str(value or "").strip()
    if text:
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        for candidate in (path, *path.parents):
            if candidate.is_dir():
                return Path(os.path.realpath(candidate))
    return Path(os.path.realpath(home))


def _visible(name: str) -> bool:
    return not name.startswith(".")


def list_folder(folder: Path, suffixes: tuple[str, ...] | None = None, folders_only: bool = False) -> Listing:
    """The folders and (matching) files directly inside `folder`, folders first."""
    dirs: list[Entry] = []
    files: list[Entry] = []
    try:
        with os.scandir(folder) as it:
            for item in it:
                if not _visible(item.name):
                    continue
                try:
                    st = item.stat()  # follows symlinks: a link to a folder is a folder
                except OSError:
                    continue  # a broken link
                if stat.S_ISDIR(st.st_mode):
                    dirs.append(Entry(item.name, True))
                elif stat.S_ISREG(st.st_mode) and not folders_only:
                    if suffixes is None or item.name.lower().endswith(suffixes):
                        files.append(Entry(item.name, False, st.st_size))
    except OSError as exc:
        raise BrowseError("browse.unreadable") from exc
    entries = sorted(dirs, key=lambda e: e.name.lower()) + sorted(files, key=lambda e: e.name.lower())
    return Listing(str(folder), entries[:MAX_ENTRIES], max(0, len(entries) - MAX_ENTRIES))


def step_into(folder: str, name: str, listed: list[str]) -> Path:
    """`folder`/`name`, where `name` must be an entry the user was shown in `folder`."""
    if name not in listed or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise BrowseError("browse.not_listed")
    return Path(os.path.realpath(Path(folder) / name))


def parent_of(folder: str) -> Path:
    return Path(os.path.realpath(Path(folder).parent))
