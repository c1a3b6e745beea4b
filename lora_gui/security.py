"""What the app lets a browser reach: which host names it answers, which files it serves.

- Host names: a request whose `Host` header names another site is refused (400), so a
  page on attacker.example that re-points its name at 127.0.0.1 (DNS rebinding) reads
  and changes nothing. Accepted: localhost, 127.0.0.1, [::1], the --host given, the share
  link's host once it exists, and, when listening on every address (0.0.0.0 / ::), any
  IP address and this computer's own names.
- Origins: a request that carries an `Origin` (browsers send one with every POST and
  every cross-site call) must come from the page itself: same host and port as its
  `Host`, else 403. Without an Origin (curl, scripts) the Host check alone decides.
- Files: Gradio serves only paths listed in the Blocks' `allowed_paths`; `servable` lets
  exactly one existing regular file in, never a folder, so nothing beside a saved LoRA
  (and never / or a home folder) can be fetched.

Imports starlette (a Gradio dependency) and nothing of torch or trainer.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
EVERY_ADDRESS = ("0.0.0.0", "::", "")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def host_name(value: str | None) -> str | None:
    """'LocalHost:7860' -> 'localhost', '[::1]:7860' -> '::1'; None when unreadable."""
    if not value:
        return None
    try:
        name = urlsplit("//" + value.strip()).hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _own_names() -> set[str]:
    """This computer's names (for a server listening on every address)."""
    names: set[str] = set()
    for getter in (socket.gethostname, socket.getfqdn):
        try:
            name = getter().lower().rstrip(".")
        except OSError:
            continue
        if name:
            names.update({name, f"{name.split('.')[0]}.local"})
    return names


class HostPolicy:
    """The host names this app answers to (lower case, no port, IPv6 without brackets)."""

    def __init__(self, names: Iterable[str], any_ip: bool = False):
        """`names`: bare host names or addresses ('localhost', '::1', '[::1]')."""
        self.names = {n.strip().strip("[]").lower().rstrip(".") for n in names} - {""}
        self.any_ip = any_ip

    @classmethod
    def for_bind(cls, host: str) -> HostPolicy:
        """The names a server started with `--host host` is reached by."""
        every = host.strip("[]") in EVERY_ADDRESS
        return cls([*LOOPBACK_NAMES, host, *(sorted(_own_names()) if every else [])], any_ip=every)

    def add(self, url: str) -> None:
        """Also accept the host of this URL (the share link, once Gradio made it)."""
        name = host_name(urlsplit(url).netloc)
        if name:
            self.names.add(name)

    def accepts(self, name: str | None) -> bool:
        return bool(name) and (name in self.names or (self.any_ip and _is_ip(name)))

    def refusal(self, headers: Headers) -> tuple[int, str] | None:
        """(status, reason) when a request with these headers must be refused, else None."""
        host = headers.get("host")
        if not self.accepts(host_name(host)):
            return 400, "Invalid host header: this app answers only to the addresses it was started for."
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, host or ""):
            return 403, "Cross-site request refused: the Origin is not this app's page."
        return None

    def middleware(self) -> Middleware:
        """The Starlette middleware that enforces this policy (for launch's app_kwargs)."""
        return Middleware(HostGuard, policy=self)


def same_origin(origin: str, host: str) -> bool:
    """Whether `origin` (scheme://name[:port]) is the site whose Host header is `host`."""
    try:
        o = urlsplit(origin.strip())
        h = urlsplit("//" + host.strip())
        if o.scheme not in DEFAULT_PORTS or not o.hostname or not h.hostname:
            return False
        default = DEFAULT_PORTS[o.scheme]
        return o.hostname.rstrip(".") == h.hostname.rstrip(".") and (o.port or default) == (h.port or default)
    except ValueError:  # a port that is not a number
        return False


class HostGuard:
    """ASGI middleware: refuses HTTP and WebSocket requests that `policy` refuses."""

    def __init__(self, app: Any, policy: HostPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.policy.refusal(Headers(scope=scope))
        if refused is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            status, reason = refused
            await PlainTextResponse(reason, status_code=status)(scope, receive, send)


def servable(path: str | Path) -> str | None:
    """The absolute path to put in `allowed_paths` for this file, or None when it is not
    one existing regular file (a folder would serve everything under it)."""
    try:
        resolved = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return str(resolved) if resolved.is_file() else None
