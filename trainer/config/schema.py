"""How a setting is declared: type, default, range, choices, help (en/ja), tab and group.

Every setting of the trainer is declared exactly once, in `trainer.config.settings`, with
`setting(...)`. The GUI builds its widgets from `FIELDS`, the CLI and presets validate
through the same pydantic model, and the metadata here is the only home of a default,
a range or a help text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import Field

TABS = ("Source Model", "Folders", "Parameters", "Advanced", "Samples")


@dataclass(frozen=True)
class FieldSpec:
    """What the GUI and the validators need to know about one setting."""

    name: str
    type: type
    default: Any
    tab: str
    group: str
    label: str
    label_ja: str
    help: str
    help_ja: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    secret: bool = False
    widget: str | None = None  # "path-dir", "path-file", "textarea" or None (derived from type)
    advanced: bool = False  # shown in a collapsed "more" group
    suggestions: tuple | None = None  # text with usual values offered (any other text allowed)

    def describe_allowed(self) -> str:
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else f"{x:g}"

        """A short English phrase for 'what is allowed', used in error messages."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.type in (int, float):
            kind = "a whole number" if self.type is int else "a number"
            lo = self.minimum
            hi = self.maximum
            if lo is not None and hi is not None:
                op = ">" if self.exclusive_minimum else ">="
                return f"{kind} {op} {num(lo)} and <= {num(hi)}"
            if lo is not None:
                return f"{kind} {'>' if self.exclusive_minimum else '>='} {num(lo)}"
            if hi is not None:
                return f"{kind} <= {num(hi)}"
            return kind
        if self.type is bool:
            return "true or false"
        return "text"


def setting(
    default: Any,
    *,
    tab: str,
    group: str,
    label: str,
    label_ja: str,
    help: str,
    help_ja: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    secret: bool = False,
    widget: str | None = None,
    advanced: bool = False,
    suggestions: tuple | None = None,
) -> Any:
    """Declare one setting as a pydantic Field carrying its GUI metadata."""
    assert tab in TABS, tab
    extra = {
        "tab": tab,
        "group": group,
        "label": label,
        "label_ja": label_ja,
        "help_ja": help_ja,
        "secret": secret,
        "widget": widget,
        "advanced": advanced,
        "suggestions": list(suggestions) if suggestions else None,
    }
    kwargs: dict[str, Any] = {}
    if ge is not None:
        kwargs["ge"] = ge
    if gt is not None:
        kwargs["gt"] = gt
    if le is not None:
        kwargs["le"] = le
    return Field(default, description=help, json_schema_extra=extra, **kwargs)


def spec_from_field(name: str, annotation: Any, info: Any) -> FieldSpec:
    """Build a FieldSpec from a pydantic FieldInfo declared with `setting`."""
    extra = info.json_schema_extra or {}
    lo = hi = None
    exclusive = False
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            lo = m.ge
        if getattr(m, "gt", None) is not None:
            lo, exclusive = m.gt, True
        if getattr(m, "le", None) is not None:
            hi = m.le
    choices = get_args(annotation) if get_origin(annotation) is Literal else None
    base = type(choices[0]) if choices else annotation
    return FieldSpec(
        name=name,
        type=base,
        default=info.default,
        tab=extra["tab"],
        group=extra["group"],
        label=extra["label"],
        label_ja=extra["label_ja"],
        help=info.description or "",
        help_ja=extra["help_ja"],
        choices=choices,
        minimum=lo,
        maximum=hi,
        exclusive_minimum=exclusive,
        secret=extra.get("secret", False),
        widget=extra.get("widget"),
        advanced=extra.get("advanced", False),
        suggestions=tuple(extra["suggestions"]) if extra.get("suggestions") else None,
    )
