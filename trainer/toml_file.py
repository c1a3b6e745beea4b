"""Read a TOML file (dataset configs, LyCORIS presets) as data, with reasons a person reads."""
from __future__ import annotations

from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def load_toml(path: str | Path) -> dict:
    """The file's tables. Raises ValueError: '<path> does not exist', 'cannot read ...' or
    'is not valid TOML (...)'."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML ({exc})") from None
