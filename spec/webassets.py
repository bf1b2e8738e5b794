"""A web page and its assets as both servers serve them: hashed names, ETags, gzip, a strict CSP.

The files ship in a package folder (``runtime/ui``, ``registry/ui``, and the ``theme.css`` both
use in ``spec/ui``); ``Site.load`` reads them once. Assets get names that carry a hash of their
content (``app.3f2a…js``) and are cached for a year; the page is revalidated (``no-cache`` with
an ETag) so a new version shows at once, and its ``/ui/assets/NAME`` references are rewritten
to the hashed names. Every answer carries a Content-Security-Policy that allows scripts, styles
and requests from this origin only: no inline script, no ``on*=`` handlers, no CDN. Pure apart
from ``Site.load``; the servers turn an ``Answer`` into their framework's response.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath

PAGE = "index.html"
ASSETS_PATH = "/ui/assets/"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
IMMUTABLE = "public, max-age=31536000, immutable"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}  # fmt: skip
_REFERENCE = re.compile(r'(?<=")/ui/assets/([\w.-]+)(?=")')


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    content_type: str | None


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

    def answer(self, method: str, headers: Mapping[str, str]) -> Answer:
        """The answer to ``method`` with these request headers (lower-case names)."""
        zipped = accepts_gzip(headers.get("accept-encoding", ""))
        etag = f'"{self.etag}.gz"' if zipped else f'"{self.etag}"'
        out = {
            **SECURITY_HEADERS,
            "ETag": etag,
            "Cache-Control": self.cache_control,
            "Vary": "Accept-Encoding",
        }
        if etag in _etags(headers.get("if-none-match", "")):
            return Answer(304, out, b"", None)
        if zipped:
            out["Content-Encoding"] = "gzip"
        body = self.gzipped if zipped else self.body
        if method == "HEAD":
            out["Content-Length"] = str(len(body))
            body = b""
        return Answer(200, out, body, self.content_type)


@dataclass(frozen=True)
class Site:
    """A page and its hashed assets."""

    page: StaticFile
    assets: dict[str, StaticFile]

    @classmethod
    def load(cls, folder: Traversable) -> Site:
        """Read ``folder``'s ``index.html`` and every other file in it, and the shared
        ``theme.css`` (``spec/ui/``: colours, dark mode, base rules), once."""
        assets: dict[str, StaticFile] = {}
        hashed: dict[str, str] = {}
        entries = [*folder.iterdir(), *(files("mdl.spec") / "ui").iterdir()]
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name == PAGE or not entry.is_file():
                continue
            body = entry.read_bytes()
            stem, dot, ext = entry.name.rpartition(".")
            name = f"{stem}.{hashlib.sha256(body).hexdigest()[:12]}{dot}{ext}"
            hashed[entry.name] = name
            assets[name] = StaticFile.of(body, name, IMMUTABLE)
        html = (folder / PAGE).read_text(encoding="utf-8")
        html = _REFERENCE.sub(lambda m: ASSETS_PATH + hashed[m.group(1)], html)
        return cls(StaticFile.of(html.encode(), PAGE, "no-cache"), assets)


def accepts_gzip(header: str) -> bool:
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
