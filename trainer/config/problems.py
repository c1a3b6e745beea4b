"""A problem with a setting, and the error that carries every problem found at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    # True: a problem only because this machine has no NVIDIA GPU (a dry run planning for
    # another GPU, `--gpu` / `--vram`, reports it as a note instead).
    needs_gpu: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(Exception):
    """Every problem found in a config, each naming its key.

    `config`, where there is one: the settings with each refused value at its default, so
    that the checks of the disk, the dataset and the machine can still run and every
    problem is listed at once (None when nothing usable was read)."""

    def __init__(self, problems: list[Problem], config: Any = None):
        self.problems = problems
        self.config = config
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the settings:\n{lines}")

    def by_key(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in self.problems:
            out.setdefault(p.key, []).append(p.message)
        return out
