"""Sample prompts and when to sample (pure: no torch, so checks and the GUI stay instant).

A prompt line is Kohya's: the prompt, then optional flags
    --n negative prompt   --w width   --h height   --s steps   --l CFG scale   --d seed
e.g. `mychar, smiling, upper body --n lowres, bad hands --w 512 --h 768 --s 28 --l 7 --d 5`.
Empty lines and lines starting with '#' are skipped. `sample_prompts` holds either such
lines (the Kohya GUI stores the text itself) or the path of a .txt prompt file, or of a
.json file holding a list of {"prompt", "negative_prompt", "width", "height",
"sample_steps", "scale", "seed"} objects.

Timing follows sd-scripts: `sample_every_n_epochs`, when set, replaces
`sample_every_n_steps`; `sample_at_first` adds samples before the first step.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STEPS = 30
DEFAULT_SCALE = 7.5
# Bounds that keep a preview within reach of a consumer GPU (a 4096 px side is already
# 16 times the pixels of SD 1.5's 1024 px); a bad value is named before training starts.
MAX_SIDE = 4096
MAX_STEPS = 1000
_FLAG = re.compile(r"\s--([a-zA-Z]+)(?=\s|$)")
_PROMPT_FILE_SUFFIXES = (".txt", ".json")


@dataclass(frozen=True)
class SamplePrompt:
    """One preview image to make. width/height 0 = the training resolution; seed None =
    a fixed seed from the run's seed and the prompt's place (so samples compare over time)."""

    prompt: str
    negative: str = ""
    width: int = 0
    height: int = 0
    steps: int = DEFAULT_STEPS
    scale: float = DEFAULT_SCALE
    seed: int | None = None


def _number(flag: str, text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"--{flag} needs a number, got {text!r}") from None


def _checked(prompt: SamplePrompt) -> SamplePrompt:
    """`prompt` if its numbers are within bounds; else ValueError naming the flag."""
    for flag, side in (("w", prompt.width), ("h", prompt.height)):
        if side and not 64 <= side <= MAX_SIDE:
            raise ValueError(f"--{flag} {side} is outside 64..{MAX_SIDE} pixels")
    if not 1 <= prompt.steps <= MAX_STEPS:
        raise ValueError(f"--s {prompt.steps} is outside 1..{MAX_STEPS} steps")
    if not -100 <= prompt.scale <= 100:  # also refuses nan and inf
        raise ValueError(f"--l {prompt.scale} is outside -100..100")
    if prompt.seed is not None and not 0 <= prompt.seed < 2**63:
        raise ValueError(f"--d {prompt.seed} is outside 0..2^63-1")
    return prompt


def parse_prompt_line(line: str) -> SamplePrompt | None:
    """A prompt line -> SamplePrompt; None for empty and comment lines.

    Raises ValueError naming the bad flag (unknown flags or non-numbers)."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    parts = _FLAG.split(" " + line)
    prompt = parts[0].strip()
    values: dict = {}
    for flag, value in zip(parts[1::2], parts[2::2], strict=False):
        flag, value = flag.lower(), value.strip()
        if flag == "n":
            values["negative"] = value
        elif flag in ("w", "h", "s", "d"):
            name = {"w": "width", "h": "height", "s": "steps", "d": "seed"}[flag]
            values[name] = int(_number(flag, value, int))
        elif flag == "l":
            values["scale"] = float(_number(flag, value, float))
        else:
            raise ValueError(f"unknown flag --{flag} (use --n --w --h --s --l --d)")
    return _checked(SamplePrompt(prompt=prompt, **values))


def parse_prompts(text: str) -> list[SamplePrompt]:
    """Every prompt in a block of prompt lines. Raises ValueError naming the line."""
    prompts = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            parsed = parse_prompt_line(line)
        except ValueError as exc:
            raise ValueError(f"sample prompt line {number}: {exc}") from None
        if parsed is not None:
            prompts.append(parsed)
    return prompts


def _from_json(path: Path) -> list[SamplePrompt]:
    entries = json.loads(path.read_text(encoding="utf-8-sig"))
    if isinstance(entries, dict):
        entries = [entries]
    prompts = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not str(entry.get("prompt", "")).strip():
            raise ValueError(f"{path}: each entry needs a 'prompt'")
        prompt = SamplePrompt(
            prompt=str(entry["prompt"]),
            negative=str(entry.get("negative_prompt", "")),
            width=int(entry.get("width", 0)),
            height=int(entry.get("height", 0)),
            steps=int(entry.get("sample_steps", DEFAULT_STEPS)),
            scale=float(entry.get("scale", DEFAULT_SCALE)),
            seed=None if entry.get("seed") is None else int(entry["seed"]),
        )
        try:
            prompts.append(_checked(prompt))
        except ValueError as exc:
            raise ValueError(f"{path}: entry {number}: {exc}") from None
    return prompts


def looks_like_prompt_file(value: str) -> bool:
    """A single line ending in .txt / .json is meant as a prompt file's path."""
    text = value.strip()
    return "\n" not in text and text.lower().endswith(_PROMPT_FILE_SUFFIXES)


def read_sample_prompts(value: str) -> list[SamplePrompt]:
    """The prompts of `sample_prompts`: an existing file's prompts, or the text's own.

    Raises ValueError for a missing prompt file or a bad line (the message says which)."""
    text = value.strip()
    if not text:
        return []
    path = Path(text)
    if "\n" not in text and path.is_file():
        try:
            if path.suffix.lower() == ".json":
                return _from_json(path)
            return parse_prompts(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, RecursionError) as exc:
            raise ValueError(f"cannot read the prompt file {path}: {exc}") from None
    if looks_like_prompt_file(text):
        raise ValueError(f"the prompt file {text} does not exist")
    return parse_prompts(text)


def sample_size(prompt: SamplePrompt, resolution: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of a sample: the flags or the training resolution, rounded down to
    a multiple of 64 (at least 64), as sd-scripts does."""
    width = prompt.width or resolution[0]
    height = prompt.height or resolution[1]
    return max(64, width - width % 64), max(64, height - height % 64)


def sampling_due(*, step: int, every_n_steps: int, every_n_epochs: int, epoch_end: int | None = None) -> bool:
    """Whether to sample now: after optimizer step `step`, or (epoch_end set) at the end
    of that epoch. When every_n_epochs is set, every_n_steps is not used (sd-scripts)."""
    if every_n_epochs > 0:
        return epoch_end is not None and epoch_end % every_n_epochs == 0
    if epoch_end is not None:
        return False
    return every_n_steps > 0 and step > 0 and step % every_n_steps == 0
