"""One upstream download of a blob, shared by every request for it while it runs.

The bytes go, as they arrive, to an anonymous spool file (under ``$TMPDIR``) and to an upload
session of the repository, which hashes them; readers stream from the spool at their own pace
and from any offset. The last byte is withheld until the session's commit has verified the
digest and published the blob, so no reader ever gets the whole of content that fails its
digest, and nothing that fails is ever stored (the session is discarded). Every file and
storage call runs in a worker thread; the loop only waits on events.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from starlette.concurrency import run_in_threadpool

from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.proxy_upstream import content_length
from mdl.registry.sessions import Session, Sink, Uploads
from mdl.spec.digest import Digest
from mdl.store.fsio import write_all

log = logging.getLogger("mdl.registry.proxy")
PIECE = 1024 * 1024
_SPOOL = Path("proxy spool")


class BlobFetch:
    """The shared state of one download; every method runs on the event loop."""

    def __init__(self, name: str, digest: Digest) -> None:
        self.name = name
        self.digest = digest
        self.size: int | None = None
        """The upstream's Content-Length, once ``started``."""
        self.started = asyncio.Event()
        self.finished = False
        self.error: OCIError | None = None
        self._fd = -1
        self._written = 0
        self._readable = 0
        self._changed = asyncio.Event()

    def reader(self) -> int | None:
        """A descriptor of the spool for one reader to close, or None once the download is over
        (the blob is in storage, or ``error`` says why not)."""
        return os.dup(self._fd) if self._fd >= 0 and not self.finished else None

    async def readable(self, offset: int) -> int:
        """Wait until bytes past ``offset`` may be read, or the download ended; the end of what
        may be read. Raises the download's error."""
        while True:
            if self.error is not None:
                raise self.error
            if self._readable > offset or self.finished:
                return self._readable
            changed = self._changed
            await changed.wait()

    async def pieces(self, fd: int, first: int, length: int | None) -> AsyncIterator[bytes]:
        """The bytes from ``first`` on (``length`` of them, or to the end), read from ``fd``
        (a ``reader``, which the caller closes)."""
        offset = first
        while length is None or offset < first + length:
            end = await self.readable(offset)
            if length is not None:
                end = min(end, first + length)
            if end <= offset:
                return
            piece = await run_in_threadpool(os.pread, fd, min(PIECE, end - offset), offset)
            offset += len(piece)
            yield piece

    async def run(self, response: httpx.Response, uploads: Uploads) -> None:
        """Copy ``response`` (the upstream's 200) into the spool and a new upload session, then
        verify and publish; the fetch ends with the outcome either way."""
        session: tuple[Session, Sink] | None = None
        error: OCIError | None = OCIError(ErrorCode.UPSTREAM_UNAVAILABLE, "interrupted")
        try:
            self.size = content_length(response)
            self._fd = await run_in_threadpool(_spool)
            session = await run_in_threadpool(_open, uploads, self.name, self.digest)
            self.started.set()
            async for piece in _gathered(response):
                if self.size is not None and self._written + len(piece) > self.size:
                    raise OCIError(ErrorCode.UPSTREAM_CORRUPT, {"digest": str(self.digest)})
                await run_in_threadpool(_write, self._fd, session[1], piece)
                self._advance(len(piece))
            if self.size is not None and self._written != self.size:
                raise OCIError(ErrorCode.UPSTREAM_CORRUPT, {"digest": str(self.digest)})
            held, session = session, None
            await run_in_threadpool(_commit, held, self.digest)
            error = None
        except OCIError as exc:
            error = exc
        except httpx.HTTPError as exc:
            error = OCIError(ErrorCode.UPSTREAM_UNAVAILABLE, {"error": type(exc).__name__})
        except Exception:
            log.exception("proxy fetch of %s@%s failed", self.name, self.digest)
            error = OCIError(ErrorCode.INTERNAL)
        finally:
            if session is not None:
                await run_in_threadpool(_discard, session)
            if error is not None and error.code is not ErrorCode.UPSTREAM_CORRUPT:
                log.warning("proxy fetch of %s@%s: %s", *self._id, error)
            elif error is not None:
                log.error("upstream sent %s@%s with a wrong digest: not stored", *self._id)
            spool = self._end(error)
            if spool >= 0:  # the last close frees the spool's blocks: not on the loop
                await run_in_threadpool(os.close, spool)

    def end(self, error: OCIError | None = None) -> None:
        """End a download that never ran: the blob was stored meanwhile (no ``error``), or
        the upstream refused it."""
        if not self.finished:
            self._end(error)  # no spool yet

    @property
    def _id(self) -> tuple[str, Digest]:
        return self.name, self.digest

    def _advance(self, count: int) -> None:
        self._written += count
        self._readable = self._written - 1
        self._notify()

    def _end(self, error: OCIError | None) -> int:
        """Finish, and hand back the spool's descriptor (-1 if none) for the caller to close."""
        self.error = error
        self.finished = True
        if error is None:
            self._readable = self._written
        spool, self._fd = self._fd, -1
        self.started.set()
        self._notify()
        return spool

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


async def _gathered(response: httpx.Response) -> AsyncIterator[bytes]:
    """The raw body in pieces of at least ``PIECE`` bytes (one thread hop each)."""
    buffer = bytearray()
    async for chunk in response.aiter_raw():
        buffer += chunk
        if len(buffer) >= PIECE:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def _spool() -> int:
    with tempfile.TemporaryFile(prefix="mdl-proxy-") as spool:
        return os.dup(spool.fileno())


def _open(uploads: Uploads, name: str, digest: Digest) -> tuple[Session, Sink]:
    session = uploads.hold(name, uploads.create(name, digest.algorithm))
    return session, session.sink()


def _write(fd: int, sink: Sink, piece: bytes) -> None:
    write_all(fd, piece, _SPOOL)
    sink.write(piece)


def _commit(held: tuple[Session, Sink], digest: Digest) -> None:
    session, sink = held
    try:
        session.appended(sink, ok=True)
        session.commit(digest)
    except OCIError as exc:
        session.cancel()
        if exc.code is ErrorCode.DIGEST_INVALID:
            raise OCIError(ErrorCode.UPSTREAM_CORRUPT, exc.detail) from None
        raise
    finally:
        session.release()


def _discard(held: tuple[Session, Sink]) -> None:
    session, sink = held
    try:
        sink.close(keep=False)
        session.cancel()
    finally:
        session.release()
