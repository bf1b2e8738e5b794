"""The pull-through cache (``mdl registry serve --proxy URL``): what is cached, and for how long.

- A manifest by digest and a blob are immutable: once stored they are served from storage and
  the upstream is never asked again (a blob stored for another repository is linked after a
  HEAD upstream shows this repository has it too).
- A tag is served from storage for ``ttl`` seconds after it was fetched or last revalidated;
  then a HEAD upstream compares digests (same: the tag's time is renewed; different: the new
  manifest is fetched and the tag moved; 404: the cached tag is dropped). While the upstream is
  down (no answer, or 5xx), the cached tag is served and the answer says so.
- Concurrent requests for the same uncached manifest, tag revalidation or blob share one
  upstream request (per process): blobs through ``proxy_fetch.BlobFetch``, the rest through
  ``_once``.

Answers carry ``Cache-Status`` (RFC 9211). Manifests are verified against their digest (the
reference, or the upstream's ``Docker-Content-Digest``) and validated as a push would be.
Storage calls run in worker threads, upstream requests on the loop (async httpx).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.proxy_fetch import BlobFetch
from mdl.registry.proxy_upstream import DOWN, Upstream, UpstreamSettings
from mdl.registry.repos import Repositories, Revision
from mdl.registry.sessions import Uploads
from mdl.registry.validation import KNOWN_TYPES, Checked, check
from mdl.spec.digest import Digest
from mdl.spec.errors import MdlError
from mdl.spec.manifest import MAX_MANIFEST_BYTES

log = logging.getLogger("mdl.registry.proxy")
T = TypeVar("T")

CACHE_STATUS = "Cache-Status"
HIT = "mdl; hit"
MISS = "mdl; fwd=miss; stored"
FORWARDED = "mdl; fwd=miss"
COLLAPSED = "mdl; fwd=miss; collapsed"
REVALIDATED = "mdl; fwd=stale; fwd-status=200"
STALE = 'mdl; hit; detail="upstream down, tag not revalidated"'
STALE_TAGS = 'mdl; hit; detail="upstream down, cached tags"'
ACCEPT = ", ".join(sorted(KNOWN_TYPES))


@dataclass
class Passing:
    """A blob on its way from the upstream, not (yet) in storage."""

    size: int | None
    status: str
    """The ``Cache-Status`` to answer with."""
    fetch: BlobFetch | None = None
    """The download to stream from (None for a HEAD)."""
    fd: int = -1
    """The spool, open for this one answer (which closes it)."""


class Proxy:
    def __init__(self, repos: Repositories, uploads: Uploads, settings: UpstreamSettings) -> None:
        self.repos = repos
        self.uploads = uploads
        self.upstream = Upstream(settings)
        self.ttl = settings.ttl
        self._flights: dict[tuple[str, str, str], asyncio.Task[Any]] = {}
        self._fetches: dict[tuple[str, Digest], BlobFetch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # manifests

    async def revision(self, name: str, reference: str | Digest) -> tuple[Revision, str]:
        """The stored revision ``reference`` names (fetched or revalidated as needed), and
        its ``Cache-Status``."""
        repos = self.repos
        if isinstance(reference, Digest):
            if await run_in_threadpool(repos.has_revision, name, reference):
                return await run_in_threadpool(repos.revision, name, reference), HIT
            key = ("digest", name, str(reference))
            await self._once(key, lambda: self._fetch(name, reference, None))
            return await run_in_threadpool(repos.revision, name, reference), MISS
        cached = await run_in_threadpool(repos.tagged, name, reference)
        if cached is not None and time.time() - cached[1] < self.ttl:
            with contextlib.suppress(OCIError):
                return await run_in_threadpool(repos.revision, name, cached[0]), HIT
        try:
            key = ("tag", name, reference)
            digest, status = await self._once(key, lambda: self._refresh(name, reference, cached))
        except OCIError as exc:
            if cached is None or exc.code not in DOWN:
                raise
            log.warning("upstream down (%s): serving %s:%s as cached", exc, name, reference)
            return await run_in_threadpool(repos.revision, name, cached[0]), STALE
        return await run_in_threadpool(repos.revision, name, digest), status

    async def _refresh(
        self, name: str, tag: str, cached: tuple[Digest, float] | None
    ) -> tuple[Digest, str]:
        try:
            if cached is not None:
                remote = await self.upstream.manifest_digest(name, tag, ACCEPT)
                if remote == str(cached[0]) and await run_in_threadpool(
                    self.repos.has_revision, name, cached[0]
                ):
                    await run_in_threadpool(self.repos.touch_tag, name, tag)
                    return cached[0], REVALIDATED
            return await self._fetch(name, tag, tag), MISS
        except OCIError as exc:
            if cached is not None and exc.code is ErrorCode.MANIFEST_UNKNOWN:
                with contextlib.suppress(OCIError):
                    await run_in_threadpool(self.repos.delete_tag, name, tag)
            raise

    async def _fetch(self, name: str, reference: str | Digest, tag: str | None) -> Digest:
        data, content_type, claimed = await self.upstream.manifest(
            name, str(reference), ACCEPT, MAX_MANIFEST_BYTES
        )
        expected = reference if isinstance(reference, Digest) else _digest(claimed)
        algorithm = expected.algorithm if expected is not None else "sha256"
        digest = await run_in_threadpool(Digest.of, data, algorithm)
        if expected is not None and digest != expected:
            detail = {"digest": str(expected), "actual": str(digest)}
            log.error("upstream sent %s@%s with a wrong digest: not stored", name, expected)
            raise OCIError(ErrorCode.UPSTREAM_CORRUPT, detail)
        media_type = (content_type or "").split(";", 1)[0].strip() or None
        try:
            checked = await run_in_threadpool(check, data, media_type, digest)
        except OCIError as exc:
            detail = {"manifest": str(digest), "invalid": exc.detail or exc.code.message}
            raise OCIError(ErrorCode.UPSTREAM_FAILED, detail) from None
        await run_in_threadpool(self._store, name, digest, data, checked, tag)
        return digest

    def _store(
        self, name: str, digest: Digest, data: bytes, checked: Checked, tag: str | None
    ) -> None:
        revision = Revision(digest, checked.media_type, len(data), checked.subject)
        with self.repos.gc_lock():
            self.repos.put_manifest(name, revision, data, checked.referrer)
            if tag is not None:
                self.repos.tag(name, tag, digest)

    # blobs

    async def blob(self, name: str, digest: Digest, *, head: bool, ranged: bool) -> Passing | None:
        """For a blob ``name`` does not link: how to answer from the upstream, or None once it
        is stored and linked (answer from storage)."""
        if await run_in_threadpool(self.repos.has_bytes, digest):
            await self.upstream.blob_size(name, str(digest))  # the upstream repository has it
            await run_in_threadpool(self.repos.link_blob, name, digest)
            return None
        if head:
            return Passing(await self.upstream.blob_size(name, str(digest)), FORWARDED)
        fetch, status = self._fetches.get((name, digest)), COLLAPSED
        if fetch is None:
            fetch, status = self._start(name, digest), MISS
        await fetch.started.wait()
        if fetch.error is not None:
            raise fetch.error
        if ranged and fetch.size is None:
            await fetch.readable(2**63)  # a range of an unknown length: answer from storage
        fd = fetch.reader()
        if fd is None:
            if fetch.error is not None:
                raise fetch.error
            return None
        return Passing(fetch.size, status, fetch, fd)

    def _start(self, name: str, digest: Digest) -> BlobFetch:
        fetch = self._fetches[(name, digest)] = BlobFetch(name, digest)
        task = asyncio.get_running_loop().create_task(self._download(fetch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return fetch

    async def _download(self, fetch: BlobFetch) -> None:
        try:
            if await run_in_threadpool(self.repos.has_blob, fetch.name, fetch.digest):
                fetch.end()  # stored meanwhile
                return
            async with self.upstream.blob(fetch.name, str(fetch.digest)) as response:
                await fetch.run(response, self.uploads)
        except OCIError as exc:
            fetch.end(exc)
        finally:
            fetch.end(OCIError(ErrorCode.UPSTREAM_UNAVAILABLE, "interrupted"))  # if cancelled
            self._fetches.pop((fetch.name, fetch.digest), None)

    # tags

    async def tags(self, name: str) -> list[str]:
        """The upstream's tags of ``name``; OCIError when it has none or cannot say."""
        return await self.upstream.tags(name)

    async def _once(
        self, key: tuple[str, str, str], factory: Callable[[], Coroutine[Any, Any, T]]
    ) -> T:
        """Run ``factory`` once for every caller waiting on ``key`` meanwhile; a caller that
        goes away does not cancel it for the others."""
        task = self._flights.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(factory())
            self._flights[key] = task
            task.add_done_callback(lambda done: self._landed(key, done))
        result: T = await asyncio.shield(task)
        return result

    def _landed(self, key: tuple[str, str, str], task: asyncio.Task[Any]) -> None:
        self._flights.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: nobody may be waiting any more

    async def close(self) -> None:
        await self.upstream.close()


def _digest(header: str | None) -> Digest | None:
    try:
        return Digest.parse(header) if header else None
    except MdlError:
        return None
