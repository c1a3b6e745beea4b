"""What a browser can reach, checked with raw HTTP against a live app on 127.0.0.1.

- No folder is served: a preset with output_dir "." and logging_dir "/" serves neither
  /etc/passwd nor anything else under them; only files the app made, one by one.
- Host header: only the names the app was started for (DNS rebinding gets 400).
- Origin: a request from another site's page is refused (403); none (curl) is fine.
"""

from __future__ import annotations

import http.client
import json
import os
import uuid
from pathlib import Path

import pytest

import gui
from lora_gui.security import HostPolicy, same_origin, servable
from tests.lora_gui.live_app import free_port, write_demo_preset

PATHS = ("/", "/config", "/gradio_api/info", "/gradio_api/queue/join", "/gradio_api/upload")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(port, Blocks) of the app serving a preset whose folders are '.' and '/' (and
    GRADIO_ALLOWED_PATHS=/ in the environment)."""
    work = tmp_path_factory.mktemp("security")
    preset = write_demo_preset(work / "wide.json", output_dir=".", logging_dir="/")
    args = gui.parse_args(
        ["--port", str(free_port()), "--presets-dir", str(work / "user"), "--preset", str(preset)]
    )
    os.environ["GRADIO_ALLOWED_PATHS"] = "/"  # Gradio's own switch changes nothing either
    try:
        demo = gui.serve(args, block=False)
    finally:
        os.environ.pop("GRADIO_ALLOWED_PATHS", None)
    try:
        yield args.port, demo
    finally:
        demo.close()


def request(port: int, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    """(status, body) of one request; `headers` may set Host itself."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def upload(port: int, headers: dict) -> tuple[int, bytes]:
    """POST a small file to Gradio's upload route (a state change: it writes a file)."""
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="x.json"\r\n'
        f"Content-Type: application/json\r\n\r\n{{}}\r\n--{boundary}--\r\n"
    ).encode()
    headers = {**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    return request(port, "POST", "/gradio_api/upload", headers, body)


# ---- files --------------------------------------------------------------------------------


def test_no_folder_of_the_preset_is_served(app):
    port, demo = app
    assert demo.allowed_paths == []
    status, body = request(port, "GET", "/gradio_api/file=/etc/passwd")
    assert status == 403 and b"root:" not in body
    readme = Path("README.md").resolve()  # under output_dir "." (the tests' folder)
    assert request(port, "GET", f"/gradio_api/file={readme}")[0] == 403
    assert request(port, "GET", f"/gradio_api/file={Path.home()}")[0] == 403


def test_served_files_admits_exactly_one_existing_file(tmp_path):
    from gradio.utils import is_allowed_file

    from lora_gui.app import ServedFiles

    class Blocks:
        allowed_paths: list[str] = []

    lora = tmp_path / "out" / "mine.safetensors"
    lora.parent.mkdir()
    lora.write_bytes(b"x")
    beside = lora.parent / "notes.txt"
    beside.write_text("not made by the app")
    served = ServedFiles(Blocks())  # type: ignore[arg-type]
    for path in ("/", str(Path.home()), str(lora.parent), str(tmp_path / "missing.png"), str(lora)):
        served.allow(path)
    served.allow(str(lora.parent / ".." / "out" / "mine.safetensors"))  # the same file again
    assert served.blocks.allowed_paths == [str(lora.resolve())]
    assert is_allowed_file(
        lora, blocked_paths=[], allowed_paths=served.blocks.allowed_paths, created_paths=[]
    )[0]
    assert not is_allowed_file(
        beside, blocked_paths=[], allowed_paths=served.blocks.allowed_paths, created_paths=[]
    )[0]
    assert servable(tmp_path) is None and servable("/") is None and servable(lora) == str(lora.resolve())


# ---- hosts and origins --------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST."])
def test_the_app_answers_its_own_host_names(app, host):
    port, _ = app
    status, body = request(port, "GET", "/config", {"Host": f"{host}:{port}"})
    assert status == 200 and "components" in json.loads(body)


@pytest.mark.parametrize(
    "host", ["attacker.example", "localhost.attacker.example", "127.0.0.1.nip.io", "", "[::1"]
)
def test_another_host_name_is_refused_on_every_route(app, host):
    """DNS rebinding: attacker.example re-pointed at 127.0.0.1 reaches the socket but
    names itself in the Host header."""
    port, _ = app
    for path in PATHS:
        for method in ("GET", "POST"):
            status, body = request(port, method, path, {"Host": f"{host}:{port}" if host else ""})
            assert status == 400, (method, path, status, body[:200])
    assert upload(port, {"Host": f"attacker.example:{port}"})[0] == 400


def test_a_request_from_another_sites_page_is_refused(app):
    port, _ = app
    own = {"Host": f"127.0.0.1:{port}"}
    for origin in (
        "http://attacker.example",
        f"http://attacker.example:{port}",
        "null",
        f"http://localhost:{port}",
    ):
        status, _ = upload(port, {**own, "Origin": origin})
        assert status == 403, origin
        assert request(port, "POST", "/gradio_api/queue/join", {**own, "Origin": origin}, b"{}")[0] == 403
        assert request(port, "GET", "/config", {**own, "Origin": origin})[0] == 403
    # the page itself, and curl (no Origin), still work
    status, body = upload(port, {**own, "Origin": f"http://127.0.0.1:{port}"})
    assert status == 200 and json.loads(body)[0].endswith("x.json")
    assert upload(port, own)[0] == 200


def test_host_policy_names():
    local = HostPolicy.for_bind("127.0.0.1")
    assert all(local.accepts(n) for n in ("127.0.0.1", "localhost", "::1"))
    assert not any(local.accepts(n) for n in ("attacker.example", "192.168.1.5", "", None))
    lan = HostPolicy.for_bind("192.168.1.5")
    assert lan.accepts("192.168.1.5") and not lan.accepts("10.0.0.1")
    every = HostPolicy.for_bind("0.0.0.0")  # any address: any IP literal, this computer's names
    assert every.accepts("10.0.0.1") and every.accepts("fe80::1") and not every.accepts("attacker.example")
    ipv6 = HostPolicy.for_bind("::1")
    assert ipv6.accepts("::1")
    local.add("https://abcd.gradio.live")  # the share link, once made
    assert local.accepts("abcd.gradio.live")


def test_same_origin():
    assert same_origin("http://127.0.0.1:7860", "127.0.0.1:7860")
    assert same_origin("https://abcd.gradio.live", "abcd.gradio.live")
    assert same_origin("http://[::1]:7860", "[::1]:7860")
    assert not same_origin("http://127.0.0.1:7861", "127.0.0.1:7860")
    assert not same_origin("http://localhost:7860", "127.0.0.1:7860")
    assert not same_origin("null", "127.0.0.1:7860")
    assert not same_origin("file://", "127.0.0.1:7860")
    assert not same_origin("http://127.0.0.1:x", "127.0.0.1:7860")
