"""What a server on this machine answers from web browsers: the one guard both servers wear.

Any page a user visits can make the browser send requests to ``127.0.0.1``: "simple" cross-site
requests (``POST`` with a ``text/plain`` or form body) go out without a CORS preflight and run,
and a DNS-rebinding page reaches the server under its own host name and reads the answers. Two
rules, checked before routing, close both (Ollama's allowed-hosts and origins checks; its
DNS-rebinding fix is CVE-2024-28224):

- **Host.** A server bound to a loopback address answers only ``Host`` values that name a
  loopback address, ``localhost``, ``*.localhost`` or the host of an allowed origin. A server
  bound elsewhere was exposed on purpose and answers any host.
- **Origin.** A request whose ``Origin`` header is present must come from an allowed origin
  (wildcards ``*``) or from the server's own origin (the same host and port as ``Host``).
  A body-carrying request from a browser (``Sec-Fetch-Site`` says cross-site) with no ``Origin``
  and a CORS-simple body type is refused too: old browsers that omit ``Origin`` still mark it.

Paths with control characters (raw or percent-encoded) are refused as well, for both servers,
because routers and permission checks disagree on where such a path ends.

``BrowserGuard`` is plain ASGI, so it wraps either server; the decisions are pure functions.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOCAL_ORIGINS = (
    *(
        f"{scheme}://{host}{port}"
        for scheme in ("http", "https")
        for host in ("localhost", "127.0.0.1", "0.0.0.0", "[::1]")
        for port in ("", ":*")
    ),
    *("app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*"),
)
"""Allowed by default, as Ollama allows them: local pages and desktop/editor webviews."""

SIMPLE_BODY_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
"""The content types a cross-site page may send without a CORS preflight."""

_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class BrowserPolicy:
    """Which origins and hosts a server answers; build one with ``BrowserPolicy.create``."""

    origins: tuple[str, ...]
    origin_pattern: re.Pattern[str]
    check_host: bool
    hosts: frozenset[str]

    @classmethod
    def create(cls, bind_host: str, extra_origins: Iterable[str] = ()) -> BrowserPolicy:
        """The policy of a server bound to ``bind_host`` with ``MDL_ORIGINS``-style extras."""
        extra = tuple(o for o in (o.strip() for o in extra_origins) if o)
        origins = LOCAL_ORIGINS + extra
        hosts = frozenset(h for h in (origin_host(o) for o in extra) if h and "*" not in h)
        return cls(
            origins=origins,
            origin_pattern=re.compile(origin_regex(origins)),
            check_host=is_loopback(bind_host),
            hosts=hosts,
        )

    def host_allowed(self, host_header: str | None) -> bool:
        """Whether a request with this ``Host`` header is answered (DNS rebinding)."""
        if not self.check_host or host_header is None:
            return True  # a client with no Host header is no browser
        host = split_host(host_header)
        if host is None:
            return False
        return (
            host == "localhost"
            or host.endswith(".localhost")
            or is_loopback(host)
            or host in self.hosts
        )

    def origin_allowed(self, origin: str, host_header: str | None) -> bool:
        """Whether a request carrying ``Origin: origin`` comes from a page allowed to use us."""
        if self.origin_pattern.fullmatch(origin):
            return True
        parts = urlsplit(origin)
        return (
            bool(host_header)
            and parts.scheme in ("http", "https")
            and (parts.netloc.lower() == (host_header or "").lower())
        )


def refusal(policy: BrowserPolicy, scope: Scope) -> tuple[int, str] | None:
    """Why the request in this ASGI scope is refused (status, message), or None. Pure."""
    refused = path_refusal(scope)
    if refused is not None:
        return refused
    headers = _headers(scope)
    host = headers.get("host")
    if not policy.host_allowed(host):
        return 403, f"host {host!r} is not allowed; set MDL_ORIGINS to serve it"
    origin = headers.get("origin")
    if origin is not None:
        if not policy.origin_allowed(origin, host):
            return 403, f"origin {origin!r} is not allowed; set MDL_ORIGINS to allow it"
    elif (
        scope.get("method") in _UNSAFE
        and headers.get("sec-fetch-site") in ("cross-site", "same-site")
        and _media_type(headers.get("content-type", "")) in SIMPLE_BODY_TYPES
    ):
        return 403, "a cross-site request from a browser is not allowed"
    return None


def path_refusal(scope: Scope) -> tuple[int, str] | None:
    """The control-character check alone (raw or percent-encoded, in the path). Pure."""
    raw_path: bytes = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
    if _CONTROL.search(raw_path) or _CONTROL.search(unquote_to_bytes(raw_path)):
        return 400, "the path holds a control character"
    return None


class BrowserGuard:
    """ASGI middleware: answers a refused request itself (JSON body), passes the rest on.

    ``error_body`` shapes the JSON for the server's API (OCI errors, Ollama's ``{"error"}``).
    A ``policy`` of None applies only ``path_refusal`` (a server whose callers sign in).
    """

    def __init__(
        self,
        app: ASGIApp,
        policy: BrowserPolicy | None,
        error_body: Callable[[int, str], object] = lambda status, message: {"error": message},
    ) -> None:
        self.app = app
        self.policy = policy
        self.error_body = error_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = path_refusal(scope) if self.policy is None else refusal(self.policy, scope)
            if refused is not None:
                await _answer(send, refused[0], self.error_body(*refused))
                return
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address (``127.0.0.0/8``, ``::1``), brackets allowed."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def split_host(host_header: str) -> str | None:
    """The host of a ``Host`` header, lower-case, without port or brackets; None if malformed."""
    match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]*)(?::[0-9]{1,5})?", host_header)
    if not match or not match.group(1):
        return None
    return match.group(1).strip("[]").lower().rstrip(".")


def origin_host(origin: str) -> str | None:
    """The host an origin names (``https://a.example:8080`` → ``a.example``)."""
    netloc = urlsplit(origin).netloc
    return split_host(netloc) if netloc else None


def origin_regex(origins: Iterable[str]) -> str:
    """One regular expression for a list of origins with ``*`` wildcards."""
    parts = ["^" + re.escape(o).replace(r"\*", ".*") + "$" for o in origins]
    return "|".join(parts) if parts else "^$"


def _headers(scope: Scope) -> dict[str, str]:
    """The headers a browser decision reads (first value of each), decoded as Latin-1."""
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


async def _answer(send: Send, status: int, body: object) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
