"""Helpers of the page tests in a real browser: the app in a scratch folder, the page's
parts by name, and screenshots of every tab in both languages when a test fails.

`python gui.py` runs in a folder holding demo/model and demo/dataset (the session's tiny
model and demo dataset), opened with the shipped demo preset, so a run writes nothing
into the project. Screenshots go to test-artifacts/<test>/ (ignored by git).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lora_gui.i18n import LANGS, tab_name
from trainer.config import TABS

from .gui_server import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DEMO_PRESET = ROOT / "presets" / "demo.json"
LINE_MARKS = "#run-loss svg [aria-roledescription='line mark']"


@contextmanager
def studio(work: Path, tiny_model: Path, dataset: Path, *flags: str) -> Iterator[str]:
    """`python gui.py --preset presets/demo.json FLAGS` serving from `work`; yields its URL."""
    port = free_port()
    log = work / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(ROOT / "gui.py"), "--port", str(port), "--presets-dir", str(work / "user")]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*cmd, "--preset", str(DEMO_PRESET), *flags],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        shutil.copytree(tiny_model, work / "demo" / "model")  # while the server imports gradio
        shutil.copytree(dataset, work / "demo" / "dataset")
        url = f"http://127.0.0.1:{port}/"
        wait_for(url, proc, log, timeout=180)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def open_page(browser: Any, url: str, locale: str = "en-US") -> Any:
    """A fresh page at 1400 px wide, the app loaded."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000},
        locale=locale,
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.locator("#start-training").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # the page's own load event (language, checks) has run
    return page


# ---- the page's parts -------------------------------------------------------------------
def md(page: Any, elem_id: str) -> Any:
    """The Markdown inside a component (not Gradio's status overlay beside it)."""
    return page.locator(f"#{elem_id} [data-testid='markdown']")


def text(page: Any, elem_id: str) -> str:
    return " ".join(md(page, elem_id).all_inner_texts())


def box(page: Any, name: str) -> Any:
    """The text or number box of a schema field."""
    return page.locator(f"#field-{name} input:not([type=checkbox]), #field-{name} textarea").first


def fill(page: Any, name: str, value: str) -> None:
    """Type `value` into a field and leave it, as a person does."""
    b = box(page, name)
    b.fill(str(value))
    b.press("Tab")


def paste(page: Any, name: str, value: str) -> None:
    """Paste `value` over a field's text with the keyboard (no key typed, so no 'input' of
    Gradio fires), the way a path copied from a file manager arrives."""
    page.evaluate("text => navigator.clipboard.writeText(text)", value)
    b = box(page, name)
    b.click()
    b.press("Control+a")
    b.press("Control+v")


def tick(page: Any, name: str, on: bool = True) -> None:
    check = page.locator(f"#field-{name} input[type=checkbox]")
    if check.is_checked() != on:
        check.click()


def go_tab(page: Any, tab: str, lang: str) -> None:
    page.get_by_role("tab", name=tab_name(tab, lang), exact=True).click()
    page.wait_for_timeout(300)


def choose(page: Any, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    """`check()`'s first true value within `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def steps_done(page: Any) -> int:
    """The step the progress line shows (0 before the first)."""
    found = re.search(r"(\d+)\s*/\s*\d+", text(page, "run-progress"))
    return int(found.group(1)) if found else 0


def run_ended(page: Any) -> bool:
    progress = text(page, "run-progress")
    return "100 %" in progress or "⏹" in progress or bool(text(page, "run-error").strip())


def log_is_at_its_end(page: Any) -> bool:
    return page.evaluate(
        """() => { const t = document.querySelector('#run-logs textarea');
        return !!t && t.scrollHeight > t.clientHeight
          && t.scrollTop + t.clientHeight >= t.scrollHeight - 4; }"""
    )


# ---- what a person reads ------------------------------------------------------------------
UNSAID = r"""(lang) => {
  // Visible text a person reads that is not in the page's language: an English phrase
  // (two or more words, no Japanese in it) on a Japanese page, Japanese on an English one.
  const cjk = /[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]/;
  const phrase = /[A-Za-z]{2,}[,:;]? +[A-Za-z]{2,}/;
  const skip = 'code, pre, footer, textarea, input, script, style, svg, .hide';
  // A line is judged whole (a translated lead-in before the engine's own words is fine).
  const line = 'p, li, td, th, h1, h2, h3, h4, h5, label, button, [role=tab], .info-text';
  const out = new Set();
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const node = walk.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest(skip) || !el.offsetParent) continue;
    const words = (el.closest(line) || el).innerText.trim();
    if (lang === 'ja' ? (!cjk.test(words) && phrase.test(words)) : cjk.test(words)) out.add(words);
  }
  return [...out];
}"""
# Words that are the same in both languages: names of things, and what the user typed.
SAME_IN_BOTH = ("日本語", "English", "The built-in demo")


def unsaid(page: Any, lang: str) -> list[str]:
    """Visible texts not in `lang` (the language names and user text excepted)."""
    found = page.evaluate(UNSAID, lang)
    return [x for x in found if not any(x.startswith(same) for same in SAME_IN_BOTH)]


def unsaid_on_every_tab(page: Any, lang: str) -> dict[str, list[str]]:
    out = {}
    for tab in TABS:
        go_tab(page, tab, lang)
        found = unsaid(page, lang)
        if found:
            out[tab] = found
    return out


def screenshots(page: Any, folder: Path) -> list[Path]:
    """Every tab of `page` in both languages, full page, into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for lang in LANGS:
        radio = page.locator("#language").get_by_text("日本語" if lang == "ja" else "English", exact=True)
        radio.click()
        page.wait_for_timeout(2000)
        for tab in TABS:
            try:
                go_tab(page, tab, lang)
            except Exception:  # noqa: BLE001 - a broken page still gets its other pictures
                continue
            path = folder / f"{lang}_{tab.replace(' ', '_')}.png"
            page.screenshot(path=str(path), full_page=True)
            saved.append(path)
    return saved


@contextmanager
def pictures_on_failure(request: Any, page: Any) -> Iterator[None]:
    """Around a test: when it failed, screenshots of every tab in both languages go to
    test-artifacts/<test name>/ (also always with LORA_SCREENSHOTS=1)."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before or os.environ.get("LORA_SCREENSHOTS") == "1":
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        try:
            screenshots(page, ARTIFACTS / name)
        except Exception as exc:  # noqa: BLE001 - the test's own failure is what matters
            print(f"screenshots failed: {exc}")
