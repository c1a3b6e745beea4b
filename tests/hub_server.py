"""A tiny Hugging Face Hub on 127.0.0.1: what huggingface_hub asks of the real one.

Serves model repositories from {repo_id: {path: bytes}} at one commit, the way the Hub
answers `snapshot_download` (point HF_ENDPOINT or `endpoint=` at `FakeHub.url`):

- GET /api/models/{id}[/revision/{rev}]: the model info, whose `sha` is the commit;
- GET /api/models/{id}/tree/{rev}?recursive=true: every file with size, git oid and, for
  weights, the LFS sha256 and size;
- HEAD and GET /{id}/resolve/{rev}/{path}: X-Repo-Commit, ETag (X-Linked-Etag and
  X-Linked-Size for LFS files), Content-Length, and HTTP Range (206 + Content-Range).

An unknown repository is a 404 with X-Error-Code RepoNotFound; `token` makes every
repository private (401 without "Authorization: Bearer <token>"). Faults for the resume
tests: `drop_once` paths are cut off half-way through their first GET, a GET of a
`fail` path answers 500. Every request is recorded in `requests` (method, path, Range header, auth).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "1234567890abcdef1234567890abcdef12345678"
LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt")


def repo_from_folder(folder: Path) -> dict[str, bytes]:
    """{path: bytes} of every file under `folder` (a diffusers model laid out as on the Hub)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeHub:
    repos: dict[str, dict[str, bytes]]
    token: str | None = None
    drop_once: set[str] = field(default_factory=set)
    fail: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, str, str]] = field(default_factory=list)
    url: str = ""

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub.handle(self, body=False)

            def do_GET(self) -> None:
                hub.handle(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def gets(self, suffix: str) -> list[tuple[str, str, str, str]]:
        """The GET requests of files whose path ends with `suffix`."""
        return [r for r in self.requests if r[0] == "GET" and "/resolve/" in r[1] and r[1].endswith(suffix)]

    # ---- answers ------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        auth = h.headers.get("Authorization", "")
        self.requests.append((h.command, path, h.headers.get("Range", ""), auth))
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/") :]
            owner, _, rest = rest.partition("/")
            name, _, tail = rest.partition("/")
            repo_id, kind = f"{owner}/{name}", tail.split("/", 1)[0]
        else:
            owner, _, rest = path.lstrip("/").partition("/")
            name, _, tail = rest.partition("/")
            repo_id, kind = f"{owner}/{name}", "resolve" if tail.startswith("resolve/") else "?"
        files = self.repos.get(repo_id)
        if files is None or (self.token and auth != f"Bearer {self.token}"):
            status = 401 if files is not None else 404
            return self._send(
                h, status, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}
            )
        if kind == "tree":
            return self._send_json(h, [self._entry(p, d) for p, d in files.items()], body)
        if kind in ("", "revision"):
            info = {"id": repo_id, "sha": COMMIT, "private": bool(self.token)}
            info["siblings"] = [{"rfilename": p} for p in files]
            return self._send_json(h, info, body)
        if kind == "resolve":
            file = tail.split("/", 2)[2] if tail.count("/") >= 2 else ""
            if file not in files:
                return self._send(h, 404, b"Entry not found", {"X-Error-Code": "EntryNotFound"})
            return self._send_file(h, file, files[file], body)
        return self._send(h, 404, b"no such page", {})

    def _entry(self, path: str, data: bytes) -> dict:
        entry = {"type": "file", "path": path, "size": len(data), "oid": git_oid(data)}
        if path.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def _send_json(self, h: BaseHTTPRequestHandler, value: object, body: bool) -> None:
        self._send(h, 200, json.dumps(value).encode(), {"Content-Type": "application/json"}, body)

    def _send_file(self, h: BaseHTTPRequestHandler, path: str, data: bytes, body: bool) -> None:
        if body and path in self.fail:
            return self._send(h, 500, b"server error", {})
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{git_oid(data)}"', "Accept-Ranges": "bytes"}
        if path.endswith(LFS_SUFFIXES):
            headers["X-Linked-Etag"] = f'"{hashlib.sha256(data).hexdigest()}"'
            headers["X-Linked-Size"] = str(len(data))
        start, status = 0, 200
        wanted = h.headers.get("Range", "")
        if body and wanted.startswith("bytes="):
            start = int(wanted[len("bytes=") :].split("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        part = data[start:]
        if body and path in self.drop_once and status == 200:
            self.drop_once.discard(path)
            h.send_response(200)
            for key, value in {**headers, "Content-Length": str(len(part))}.items():
                h.send_header(key, value)
            h.end_headers()
            h.wfile.write(part[: len(part) // 2])
            h.wfile.flush()
            h.close_connection = True
            return None
        self._send(h, status, part, headers, body)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict, body: bool = True) -> None:
        h.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            h.send_header(key, value)
        h.end_headers()
        if body:
            h.wfile.write(data)
