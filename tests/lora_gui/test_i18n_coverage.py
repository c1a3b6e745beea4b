"""Every word the page says comes from the translation table, in both languages.

Read from the source with `ast`, so a new English sentence in lora_gui fails here until it
goes through `t()` with its Japanese: a text passed to a Gradio component, returned as a
message, or raised for the user. Docstrings, the browser's CSS and JavaScript, and lines
for the console log are not the page's words.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from lora_gui import i18n

GUI = Path(__file__).resolve().parents[2] / "lora_gui"
PROSE = re.compile(r"[A-Za-z]{2,}[,.:;!?']? +[A-Za-z]{2,}")  # two words or more
WORDS = re.compile(r"[A-Za-z]{3,}")
GRADIO_TEXTS = {"label", "info", "value", "placeholder", "title", "caption", "x_title", "y_title"}
CONSOLE = {"debug", "info", "warning", "error", "exception", "print"}
NAMES = {"KnownModel"}  # a model's own name ("SDXL base 1.0") is a name in every language
HTTP = {"refusal"}  # what the host guard answers a request that never gets the page


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _not_the_page(tree: ast.AST) -> set[int]:
    """Strings that never reach the page (CSS/JS constants, console log lines, t()'s keys) or
    are a proper name (APP_NAME)."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if any(name.endswith(("CSS", "_JS", "_NAME")) for name in targets):  # _NAME: a proper name
            ids.update(id(n) for n in ast.walk(node.value))
        if isinstance(node, ast.Compare):  # `tab == "Source Model"`: a name, not a message
            ids.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in CONSOLE or name == "t":
                ids.update(id(n) for arg in node.args[:1] for n in ast.walk(arg))
            if name in NAMES:
                ids.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.FunctionDef) and node.name in HTTP:
            ids.update(id(n) for n in ast.walk(node))
    return ids


def _texts(node: ast.AST) -> list[str]:
    """The literal words of a string or f-string node."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return []


def untranslated(path: Path) -> list[str]:
    """Each literal sentence of `path` that the page could show, as 'file:line: text'."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree) | _not_the_page(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, (ast.Constant, ast.JoinedStr)):
            continue
        for text in _texts(node):
            if PROSE.search(text):
                found.append(f"{path.name}:{node.lineno}: {text!r}")
    for node in ast.walk(tree):  # a Gradio component's own words: even a single one
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "gr"):
            continue
        shown = node.args[:1] + [k.value for k in node.keywords if k.arg in GRADIO_TEXTS]
        for arg in shown:
            for text in _texts(arg):
                if WORDS.search(text) and id(arg) not in skip:
                    found.append(f"{path.name}:{arg.lineno}: gr.{node.func.attr} {text!r}")
    return found


@pytest.mark.parametrize(
    "path", sorted(p for p in GUI.glob("*.py") if not p.name.startswith("i18n")), ids=str
)
def test_what_the_page_says_goes_through_the_translation_table(path):
    assert untranslated(path) == [], "say these with lora_gui.i18n.t(...) and add their Japanese"


def test_every_text_of_the_table_has_its_own_japanese():
    for key, (en, ja) in i18n._STRINGS.items():
        assert en.strip() and ja.strip(), key
        assert en != ja, f"{key}: the Japanese is the English"
        fields = set(re.findall(r"{(\w+)", en))
        assert fields == set(re.findall(r"{(\w+)", ja)), f"{key}: both say the same values"


def test_the_scan_finds_an_english_message_and_a_label():
    source = GUI.parent / "tests" / "lora_gui" / "_untranslated_sample.py"
    source.write_text(
        'import gradio as gr\n\ndef f():\n    gr.Button("Start")\n    return "Training is done."\n',
        encoding="utf-8",
    )
    try:
        found = untranslated(source)
    finally:
        source.unlink()
    assert len(found) == 2, found
