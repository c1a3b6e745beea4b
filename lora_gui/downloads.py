"""Start downloads a Hugging Face id first: one background download, its progress, then the run.

When the model path is a Hugging Face id that is not in the cache yet, Start checks the
rest of the form, hands the id to `api.download_model` in a worker thread and returns at
once; the page polls `ModelDownloads.snapshot()` for the progress line, and when the files
are there the worker presses Start itself (`then`). The token comes from the form's
Hugging Face token field or HF_TOKEN and goes to the Hub only: never into the state, a
message or a file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from lora_gui.i18n import t
from trainer.config.secrets import redact_text


@dataclass(frozen=True)
class DownloadState:
    """What the page shows of the download; `outcome` is what Start said after it."""

    status: str = "idle"  # idle, downloading, done, failed
    repo_id: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    outcome: Any = None  # handlers.StartOutcome of the Start pressed when the files arrived
    version: int = 0

    @property
    def active(self) -> bool:
        return self.status == "downloading"


def size_text(size: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def download_markdown(state: DownloadState, lang: str) -> str:
    """The progress line under Start (empty when no download happened)."""
    if state.status == "downloading":
        if not state.total:
            return t("download.listing", lang, id=state.repo_id)
        percent = 100.0 * state.done / state.total
        return t(
            "download.progress",
            lang,
            id=state.repo_id,
            percent=percent,
            done=size_text(state.done),
            total=size_text(state.total),
        )
    if state.status == "done":
        return t("download.done", lang, id=state.repo_id)
    if state.status == "failed":
        return t("download.failed", lang, id=state.repo_id, message=state.message)
    return ""


class ModelDownloads:
    """One download at a time, followed by the page; `api` is trainer.api (or a fake)."""

    def __init__(self, api: Any):
        self._api = api
        self._lock = threading.Lock()
        self._state = DownloadState()
        self._thread: threading.Thread | None = None

    def needed(self, path: str) -> bool:
        """Whether `path` is a Hugging Face id Start must download first."""
        check = getattr(self._api, "model_needs_download", None)
        if check is None or not str(path).strip():
            return False
        try:
            return bool(check(str(path).strip()))
        except Exception:  # noqa: BLE001 - then the usual model check speaks
            return False

    def snapshot(self) -> DownloadState:
        with self._lock:
            return self._state

    def _set(self, **changes: Any) -> None:
        with self._lock:
            self._state = replace(self._state, version=self._state.version + 1, **changes)

    def start(self, repo_id: str, token: str = "", then: Callable[[], Any] | None = None) -> bool:
        """Download `repo_id` in the background, then call `then()` (Start); False while busy."""
        with self._lock:
            if self._state.active:
                return False
            self._state = DownloadState("downloading", repo_id.strip(), version=self._state.version + 1)
        secret = token.strip() or os.environ.get("HF_TOKEN", "").strip()
        self._thread = threading.Thread(
            target=self._work, args=(repo_id.strip(), secret, then), daemon=True, name="lora-gui-download"
        )
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the download (and the Start after it) is over; True when it is."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.snapshot().active

    def _work(self, repo_id: str, token: str, then: Callable[[], Any] | None) -> None:
        def progress(p: Any) -> None:
            self._set(done=int(getattr(p, "done", 0)), total=int(getattr(p, "total", 0)))

        try:
            self._api.download_model(repo_id, token or None, progress)
        except Exception as exc:  # noqa: BLE001 - a message, never a traceback
            message = redact_text(str(exc) or type(exc).__name__, [token])
            self._set(status="failed", message=message)
            return
        outcome = None
        if then is not None:
            try:
                outcome = then()
            except Exception as exc:  # noqa: BLE001
                outcome = redact_text(str(exc) or type(exc).__name__, [token])
        with self._lock:
            total = self._state.total
        self._set(status="done", done=total, outcome=outcome)
