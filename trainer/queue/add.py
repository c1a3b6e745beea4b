"""Adding a preset to the queue: every variant of its sweep, each checked before it is added.

Each variant is validated and checked as a run checks itself before it loads a model
(trainer.run.checks.check_before_loading): all problems of all variants at once, each
prefixed with its variant's name; nothing is added unless every variant passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.config import FIELDS, ConfigError, Problem, config_from_dict, preset_dict
from trainer.config.sweep import SWEEP_KEY, expand_sweep, sweep_problems
from trainer.presets import read_preset_json
from trainer.queue.store import Entry, QueueError, change_queue


def _variant_problems(settings: dict[str, Any], check: bool) -> tuple[dict | None, list[Problem]]:
    """(the variant's settings as a preset dict, or None; its problems): those of the
    settings, and with `check` those of the dataset, paths and machine as well."""
    try:
        cfg, _ = config_from_dict(settings)
        refused: list[Problem] = []
    except ConfigError as exc:
        if exc.config is None or not check:
            return None, list(exc.problems)
        cfg, refused = exc.config, list(exc.problems)
    if not check:
        return preset_dict(cfg), []
    from trainer.run.checks import check_before_loading  # scans the dataset; loads no model

    problems = check_before_loading(cfg, config_problems=refused).problems
    return (None if refused else preset_dict(cfg)), problems


def absolute_paths(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings with their relative paths made absolute (the queue may run later from
    another folder): the output folders, and each other path that exists here (a Hugging
    Face id, which is no path here, stays as it is)."""
    out = dict(settings)
    for key, spec in FIELDS.items():
        value = out.get(key)
        if (spec.widget or "").startswith("path") and isinstance(value, str) and value.strip():
            path = Path(value.strip()).expanduser()
            if not path.is_absolute() and (path.exists() or key in ("output_dir", "logging_dir")):
                out[key] = str(path.resolve())
    return out


def checked_variants(raw: Any, *, check: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """(name, settings) of each variant of the preset dict `raw`. Raises ConfigError listing
    every problem of every variant, each as `<variant>: <setting>: <problem>`."""
    if not isinstance(raw, dict):
        raise ConfigError([Problem("preset", "must be a JSON object of settings")])
    if problems := sweep_problems(raw.get(SWEEP_KEY, {})):
        raise ConfigError(problems)
    variants = expand_sweep(raw)
    out, problems = [], []
    for variant in variants:
        settings, found = _variant_problems(variant.settings, check)
        prefix = len(variants) > 1  # a preset without a sweep: its problems as they are
        problems += [Problem(variant.name, str(p)) if prefix else p for p in found]
        if settings is not None:
            out.append((variant.name, absolute_paths(settings)))
    if problems:
        raise ConfigError(problems)
    names = [name for name, _ in out]
    if len(set(names)) != len(names):
        raise ConfigError(
            [Problem(SWEEP_KEY, "two variants get the same output name; make the values differ")]
        )
    return out


def add_preset(queue_file: Path, preset: str | Path, *, check: bool = True) -> list[Entry]:
    """Queue every variant of the preset file; returns the new entries (state waiting).
    Raises ConfigError (bad preset or variant) or QueueError (the queue file)."""
    return add_settings(queue_file, read_preset_json(preset), str(preset), check=check)


def add_settings(queue_file: Path, raw: Any, source: str = "", *, check: bool = True) -> list[Entry]:
    """Queue every variant of the preset dict `raw` (settings, and maybe a "sweep")."""
    variants = checked_variants(raw, check=check)

    def add(queue) -> list[Entry]:
        busy = {e.name for e in queue.entries if e.state in ("waiting", "running", "interrupted")}
        clash = sorted(busy & {name for name, _ in variants})
        if clash:
            raise QueueError(
                f"the queue already holds a run named {', '.join(clash)}; "
                "change output_name or remove that entry first"
            )
        return [queue.add(name, settings, source) for name, settings in variants]

    return change_queue(queue_file, add)
