"""The registry browser's index: one summary per repository, kept in memory, searched in place.

A repository's row is its latest tag (the one written last), that tag's digest and the summary of
the manifest it names. Summaries are cached by manifest digest (content never changes under a
digest), so a rescan reads only tags. The index is built on the first request (in a thread,
through the storage driver, so it works on every backend), refreshed per repository when this
process serves a manifest PUT or DELETE (``ChangeWatch``), and rescanned in the background when
older than ``rescan_after`` seconds, which is how other workers' and processes' changes arrive.
A search never touches storage: it filters the rows it has.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mdl.registry import paths, routes
from mdl.registry.errors import OCIError
from mdl.registry.model_card import Summary, index_summary, summary, variant_summary
from mdl.registry.repos import Repositories
from mdl.registry.storage.driver import PathNotFound
from mdl.spec.digest import Digest
from mdl.spec.errors import MdlError
from mdl.spec.manifest import Index, Manifest, parse

MAX_CONFIG_BYTES = 1024 * 1024
"""Config blobs larger than this are not read for a summary (a model's is a few hundred bytes)."""
MAX_CACHED = 100_000
RESCAN_AFTER = 30.0
SCAN_THREADS = 8


@dataclass(frozen=True)
class Row:
    name: str
    tag: str | None
    digest: Digest | None
    updated: float
    tags: int
    summary: Summary | None

    @property
    def haystack(self) -> str:
        facts = self.summary
        words = [self.name, self.tag or ""]
        if facts is not None:
            words += [facts.architecture or "", facts.quantization or "", facts.param_size or ""]
        return " ".join(words).lower()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tag": self.tag,
            "digest": str(self.digest) if self.digest else None,
            "updated": self.updated,
            "tags": self.tags,
            "summary": self.summary.to_json() if self.summary else None,
        }


@dataclass(frozen=True)
class TagInfo:
    tag: str
    digest: Digest
    updated: float


def search(
    rows: Sequence[tuple[str, Row]],
    query: str,
    visible: Callable[[str], bool],
    start: int,
    n: int,
) -> tuple[list[Row], int]:
    """The rows every word of ``query`` appears in (name, tag, architecture, quantization,
    parameter size) that ``visible`` lets through: ``n`` of them from ``start``, and the total."""
    words = query.lower().split()
    hits = [row for hay, row in rows if all(w in hay for w in words) and visible(row.name)]
    return hits[start : start + n], len(hits)


class Summaries:
    """Summaries of manifests by digest, read from storage once (synchronous)."""

    def __init__(self, repos: Repositories) -> None:
        self.repos = repos
        self._cache: dict[Digest, Summary] = {}

    def of(self, name: str, digest: Digest) -> Summary | None:
        found = self._cache.get(digest)
        if found is None:
            try:
                found = self._read(name, digest)
            except (OCIError, MdlError, PathNotFound):
                return None
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = found
        return found

    def _read(self, name: str, digest: Digest) -> Summary:
        document = self.document(name, digest)
        if isinstance(document, Index):
            return index_summary(
                [variant_summary(e, self.of(name, e.digest)) for e in document.manifests]
            )
        return summary(document, self.blob(name, document.config.digest, MAX_CONFIG_BYTES))

    def blob(self, name: str, digest: Digest, limit: int) -> bytes | None:
        """A blob ``name`` links (what a pull of it could fetch) of at most ``limit`` bytes."""
        size = self.repos.blob_size(name, digest)
        if size is None or size > limit:
            return None
        try:
            return self.repos.driver.read(paths.blob(digest))
        except PathNotFound:
            return None

    def document(self, name: str, digest: Digest) -> Manifest | Index:
        revision = self.repos.revision(name, digest)
        return parse(self.repos.manifest_bytes(revision), revision.media_type)


class CatalogIndex:
    def __init__(self, repos: Repositories, rescan_after: float = RESCAN_AFTER) -> None:
        self.repos = repos
        self.summaries = Summaries(repos)
        self.rescan_after = rescan_after
        self._rows: dict[str, Row] = {}
        self._sorted: list[tuple[str, Row]] = []
        self._scanned: float | None = None
        self._dirty: set[str] = set()
        self._scan_lock = threading.Lock()
        self._building: asyncio.Future[None] | None = None
        self._background: asyncio.Task[None] | None = None

    def changed(self, name: str) -> None:
        """A manifest of ``name`` was written or deleted here: refresh its row before the next
        answer."""
        self._dirty.add(name)

    async def rows(self) -> list[tuple[str, Row]]:
        """Every row (with its search text), sorted by name, current as the class says."""
        if self._scanned is None:
            await asyncio.shield(self.warm())
        elif time.monotonic() - self._scanned > self.rescan_after and self._background is None:
            self._background = asyncio.create_task(self._rescan())
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            await run_in_threadpool(self._refresh, dirty)
        return self._sorted

    def warm(self) -> asyncio.Future[None]:
        """Start building the index, once, in a thread (the page does as it is served, so the
        catalog request that follows finds it under way); the future of that build."""
        if self._building is None:
            building = asyncio.ensure_future(run_in_threadpool(self.scan))
            building.add_done_callback(self._built)
            self._building = building
        return self._building

    def _built(self, building: asyncio.Future[None]) -> None:
        if building.cancelled() or building.exception() is not None:
            self._building = None  # the next request tries again

    async def _rescan(self) -> None:
        try:
            await run_in_threadpool(self.scan)
        finally:
            self._background = None

    def scan(self) -> None:
        """Read every repository's tags (and the summaries not cached yet)."""
        with self._scan_lock:
            started = time.monotonic()
            names = list(self.repos.names())
            with ThreadPoolExecutor(SCAN_THREADS) as pool:  # an object store answers in parallel
                found = zip(names, pool.map(self.row, names), strict=True)
                rows = {name: row for name, row in found if row is not None}
            self._publish(rows)
            self._scanned = started

    def _refresh(self, names: set[str]) -> None:
        with self._scan_lock:
            rows = dict(self._rows)
            for name in names:
                row = self.row(name)
                if row is None:
                    rows.pop(name, None)
                else:
                    rows[name] = row
            self._publish(rows)

    def _publish(self, rows: dict[str, Row]) -> None:
        self._rows = rows
        self._sorted = [(rows[name].haystack, rows[name]) for name in sorted(rows)]

    def row(self, name: str) -> Row | None:
        """``name``'s row from storage, or None when it holds no manifest."""
        tags = self.tags(name)
        if not tags:
            if not any(True for _ in self.repos.revisions(name)):
                return None
            return Row(name, None, None, 0.0, 0, None)
        latest = tags[0]
        facts = self.summaries.of(name, latest.digest)
        return Row(name, latest.tag, latest.digest, latest.updated, len(tags), facts)

    def tags(self, name: str) -> list[TagInfo]:
        """``name``'s tags, the one written last first."""
        found = []
        for tag in self.repos.tags(name):
            key = paths.tag(name, tag)
            try:
                updated = self.repos.driver.stat(key).modified
                digest = Digest.parse(self.repos.driver.read(key).decode())
            except (PathNotFound, MdlError, UnicodeDecodeError):
                continue
            found.append(TagInfo(tag, digest, updated))
        return sorted(found, key=lambda t: (-t.updated, t.tag))


class ChangeWatch:
    """ASGI middleware: tells the index which repository a successful manifest PUT or DELETE
    changed, so the browser shows a push at once."""

    def __init__(self, app: ASGIApp, index: CatalogIndex) -> None:
        self.app = app
        self.index = index

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method")
        if scope["type"] != "http" or method not in ("PUT", "DELETE"):
            await self.app(scope, receive, send)
            return
        matched = routes.match(method, scope["path"])
        if matched is None or matched[0].kind != "manifest":
            await self.app(scope, receive, send)
            return

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 300:
                self.index.changed(matched[1]["name"])
            await send(message)

        await self.app(scope, receive, watch)
