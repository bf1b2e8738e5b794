"""The chat page at ``/ui``: static files shipped in the package (``runtime/ui/``), nothing else.

The page talks to the server only through the public APIs, like any other client; nothing of
a conversation reaches the server except the requests themselves. The files are read and
gzipped once, when the app is built. Assets are served under names that carry a hash of their
content (``app.3f2a…js``) and cached for a year; the page itself is revalidated (``no-cache``
with an ETag) so a new version shows at once. Every answer carries a Content-Security-Policy
that allows scripts, styles and requests from this origin only: no inline script, no
``on*=`` handlers, no CDN.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import PurePosixPath

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

PAGE = "index.html"
ASSETS_PATH = "/ui/assets/"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
IMMUTABLE = "public, max-age=31536000, immutable"
_SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}  # fmt: skip
_REFERENCE = re.compile(r'(?<=")/ui/assets/([\w.-]+)(?=")')


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str
    cache_control: str

    @classmethod
    def of(cls, body: bytes, name: str, cache_control: str) -> StaticFile:
        content_type = _TYPES[PurePosixPath(name).suffix]  # the kinds pyproject ships
        etag = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, gzip.compress(body, 9, mtime=0), content_type, etag, cache_control)

    def answer(self, request: Request) -> Response:
        zipped = _accepts_gzip(request.headers.get("accept-encoding", ""))
        etag = f'"{self.etag}.gz"' if zipped else f'"{self.etag}"'
        headers = {
            **_SECURITY,
            "ETag": etag,
            "Cache-Control": self.cache_control,
            "Vary": "Accept-Encoding",
        }
        if etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        if zipped:
            headers["Content-Encoding"] = "gzip"
        body = self.gzipped if zipped else self.body
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            body = b""
        return Response(body, 200, headers, self.content_type)


class ChatPage:
    """The page and its hashed assets, read from the package once."""

    def __init__(self) -> None:
        folder = files("mdl.runtime") / "ui"
        self.assets: dict[str, StaticFile] = {}
        hashed: dict[str, str] = {}
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name == PAGE or not entry.is_file():
                continue
            body = entry.read_bytes()
            stem, dot, ext = entry.name.rpartition(".")
            name = f"{stem}.{hashlib.sha256(body).hexdigest()[:12]}{dot}{ext}"
            hashed[entry.name] = name
            self.assets[name] = StaticFile.of(body, name, IMMUTABLE)
        html = (folder / PAGE).read_text(encoding="utf-8")
        html = _REFERENCE.sub(lambda m: ASSETS_PATH + hashed[m.group(1)], html)
        self.page = StaticFile.of(html.encode(), PAGE, "no-cache")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/ui", self.index, methods=["GET", "HEAD"]),
            Route("/ui/", self.index, methods=["GET", "HEAD"]),
            Route(ASSETS_PATH + "{name}", self.asset, methods=["GET", "HEAD"]),
        ]

    async def index(self, request: Request) -> Response:
        return self.page.answer(request)

    async def asset(self, request: Request) -> Response:
        found = self.assets.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404)
        return found.answer(request)


def _accepts_gzip(header: str) -> bool:
    for item in header.lower().split(","):
        coding, _, params = item.partition(";")
        if coding.strip() in ("gzip", "*"):
            quality = params.strip()
            if not quality.startswith("q="):
                return True
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
    return False


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
