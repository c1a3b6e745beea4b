"""The 📂 buttons beside path fields and the folder/file picker they open.

One picker for the page, floating over it: it opens at the field's folder (or the home
folder), lists that one folder (`file_browser.list_folder`, filtered for model, LoRA,
TOML and JSON fields), steps into a folder the user clicks, and puts the chosen file or
folder into the field, which is then checked like typed text. It is off (no buttons, and
every handler refuses) when the app listens on a network address without --auth. The
current folder and its listing live in a server-side State, so a step is always one of
the entries the user was shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gradio as gr

from lora_gui.file_browser import (
    BrowseError,
    kind_of,
    list_folder,
    parent_of,
    real_folder,
    start_folder,
    step_into,
)
from lora_gui.i18n import field_label, t
from lora_gui.wiring import FOLLOW_MODEL
from trainer.config import FieldSpec

Updates = dict[Any, Any]
BROWSER_CSS = (
    "#file-browser { position: fixed; top: 6vh; left: 50%; transform: translateX(-50%); z-index: 1000;"
    " width: min(760px, 94vw); max-height: 88vh; overflow-y: auto;"
    " box-shadow: 0 8px 32px rgba(0, 0, 0, 0.35); }"
    " #fb-entries { max-height: 46vh; overflow-y: auto; }"
    " #fb-entries .wrap { flex-direction: column; }"
)
PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class BrowserPanel:
    """The picker and the path fields it serves (`page` is the lora_gui.app.Page)."""

    def __init__(self, page: Any, enabled: bool = True):
        self.p = page
        self.enabled = enabled
        self.targets: dict[str, tuple[Any, Callable[[str], str]]] = {}  # name -> (widget, label)
        self.buttons: dict[str, gr.Button] = {}
        self.after: dict[str, tuple[Callable[[Mapping[Any, Any]], Updates], list[Any], list[Any]]] = {}
        self._kinds: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    # ---- buttons beside the fields ------------------------------------------------------
    def decorate(self, spec: FieldSpec, widget: Any) -> None:
        """Form hook: a 📂 button after every path field of the schema."""
        if spec.widget and spec.widget.startswith("path"):
            self.button(spec.name, widget, lambda lg, s=spec: field_label(s, lg), spec.widget)

    def button(self, name: str, widget: Any, label: Callable[[str], str], kind: str | None = None) -> None:
        """Register `widget` as a path field named `name` and put its 📂 button here."""
        self.targets[name] = (widget, label)
        self._kinds[name] = kind_of(name, kind)
        if self.enabled:
            self.buttons[name] = gr.Button(
                "📂",
                elem_id=f"browse-{name}",
                scale=0,
                min_width=44,
                size="sm",
                elem_classes=["browse-button"],
            )

    # ---- the picker ---------------------------------------------------------------------
    def render(self, lg: str) -> None:
        tr = self.p._tr
        self.state = gr.State({})
        self.picked = gr.State("")
        with gr.Column(visible=False, elem_id="file-browser", variant="panel") as self.panel:
            self.title = gr.Markdown("", elem_id="fb-title")
            with gr.Row(equal_height=True):
                self.folder = tr(
                    gr.Textbox(label=t("browse.folder", lg), elem_id="fb-folder", scale=4),
                    lambda x: {"label": t("browse.folder", x)},
                )
                self.up = tr(
                    gr.Button(t("browse.up", lg), elem_id="fb-up", scale=0, min_width=90),
                    lambda x: {"value": t("browse.up", x)},
                )
                self.home = tr(
                    gr.Button(t("browse.home", lg), elem_id="fb-home", scale=0, min_width=90),
                    lambda x: {"value": t("browse.home", x)},
                )
            self.entries = gr.Radio([], label=t("browse.entries", lg), elem_id="fb-entries")
            self.message = gr.Markdown("", elem_id="fb-message")
            with gr.Row():
                self.use_folder = tr(
                    gr.Button(t("browse.use_folder", lg), variant="primary", elem_id="fb-use-folder"),
                    lambda x: {"value": t("browse.use_folder", x)},
                )
                self.cancel = tr(
                    gr.Button(t("browse.cancel", lg), elem_id="fb-cancel"),
                    lambda x: {"value": t("browse.cancel", x)},
                )

    def _show(self, folder: str, state: dict, lang: str, note: str = "") -> Updates:
        """The picker showing `folder` (its listing remembered in the State)."""
        kind, suffixes = self._kinds[state["target"]]
        try:
            listing = list_folder(real_folder(folder), suffixes, folders_only=kind == "dir")
        except BrowseError as exc:
            return {self.message: "⚠️ " + t(str(exc), lang)}
        choices = [
            (f"📁 {e.name}", e.name + "/") if e.is_dir else (f"📄 {e.name} · {_size(e.size)}", e.name)
            for e in listing.entries
        ]
        lines = [note] if note else []
        if suffixes:
            lines.append(t("browse.only", lang, suffixes=", ".join(suffixes)))
        if listing.more:
            lines.append(t("browse.more", lang, n=listing.more))
        new_state = {**state, "folder": listing.folder, "names": listing.names}
        label = t("browse.entries_dir" if kind == "dir" else "browse.entries", lang)
        return {
            self.panel: gr.update(visible=True),
            self.folder: listing.folder,
            self.entries: gr.update(choices=choices, value=None, label=label),
            self.message: "  \n".join(lines),
            self.use_folder: gr.update(visible=kind != "file"),
            self.state: new_state,
        }

    def on_open(self, name: str, value: Any, lang: str) -> Updates:
        if not self.enabled:
            return {self.message: t("browse.refused", lang)}
        state = {"target": name, "folder": "", "names": []}
        shown = self._show(str(start_folder(str(value or ""))), state, lang)
        return {**shown, self.title: t("browse.title", lang, field=self.targets[name][1](lang))}

    def on_entry(self, choice: str | None, state: dict, lang: str) -> Updates:
        if not self.enabled or not state.get("target") or not choice:
            return {}
        name = choice[:-1] if choice.endswith("/") else choice
        try:
            path = step_into(state["folder"], name, state["names"])
        except BrowseError as exc:
            return {self.message: "⚠️ " + t(str(exc), lang)}
        if choice.endswith("/"):
            return self._show(str(path), state, lang)
        return self._choose(str(path), state)

    def on_folder(self, where: str, typed: str, state: dict, lang: str) -> Updates:
        """Up, Home or a typed folder (Enter)."""
        if not self.enabled or not state.get("target"):
            return {}
        try:
            if where == "up":
                folder = parent_of(state["folder"])
            elif where == "home":
                folder = start_folder("")
            else:
                folder = real_folder(typed, base=None)
        except BrowseError as exc:
            return {self.message: "⚠️ " + t(str(exc), lang)}
        return self._show(str(folder), state, lang)

    def on_use_folder(self, state: dict, lang: str) -> Updates:
        if not self.enabled or not state.get("target") or self._kinds[state["target"]][0] == "file":
            return {}
        return self._choose(state["folder"], state)

    def _choose(self, path: str, state: dict) -> Updates:
        widget = self.targets[state["target"]][0]
        return {widget: path, self.panel: gr.update(visible=False), self.picked: state["target"]}

    def after_pick(self, data: Mapping[Any, Any]) -> Updates:
        """What a typed value would have done: re-check the form, or the target's own handler."""
        target = data[self.picked]
        if not target:
            return {}
        if target in self.after:
            out = self.after[target][0](data)
        elif target in self.p.form.widgets:
            out = self.p.events.refresh(data)
        else:
            out = {}
        return {**out, self.picked: ""}

    # ---- wiring -------------------------------------------------------------------------
    def connect(self) -> None:
        p, form = self.p, self.p.form
        listing_out = [
            self.panel,
            self.title,
            self.folder,
            self.entries,
            self.message,
            self.use_folder,
            self.state,
        ]
        chosen_out = [*(w for w, _ in self.targets.values()), self.panel, self.picked, self.message]
        raw = {**PRIVATE, "preprocess": False}  # the field's text as typed (see wiring.connect)
        for name, button in self.buttons.items():
            widget = self.targets[name][0]
            button.click(
                lambda value, lang, n=name: self.on_open(n, value, lang), [widget, p.lang], listing_out, **raw
            )
        followed = [form.widgets[k] for k in FOLLOW_MODEL if k in form.widgets]
        after_in = {*form.widgets.values(), p.lang, self.picked}
        after_out = [p.model_md, *followed, p.summary_md, *form.error_markdowns(), self.picked]
        for _, inputs, outputs in self.after.values():
            after_in.update(inputs)
            after_out += [o for o in outputs if o not in after_out]
        self.entries.input(
            self.on_entry, [self.entries, self.state, p.lang], listing_out + chosen_out, **PRIVATE
        ).then(self.after_pick, after_in, after_out, **raw)
        self.use_folder.click(self.on_use_folder, [self.state, p.lang], chosen_out, **PRIVATE).then(
            self.after_pick, after_in, after_out, **raw
        )
        self.up.click(
            lambda s, lg: self.on_folder("up", "", s, lg), [self.state, p.lang], listing_out, **PRIVATE
        )
        self.home.click(
            lambda s, lg: self.on_folder("home", "", s, lg), [self.state, p.lang], listing_out, **PRIVATE
        )
        self.folder.submit(
            lambda typed, s, lg: self.on_folder("typed", typed, s, lg),
            [self.folder, self.state, p.lang],
            listing_out,
            **PRIVATE,
        )
        self.cancel.click(lambda: gr.update(visible=False), None, self.panel, **PRIVATE)
