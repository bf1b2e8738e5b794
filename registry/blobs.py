"""Blob endpoints: GET and HEAD (with ``Range``), DELETE. Bytes stream from storage, never whole.

HEAD answers from the object's metadata. On a backend with URLs of its own (S3), GET is a 307
to a presigned URL unless redirects are off. A local file is sent with ``FileResponse`` (the
ASGI server's sendfile/pathsend when it has one); a range, or a backend without local files,
streams from a reader in 1 MiB pieces (4 MiB from an object store), the next piece read while
the last one is sent. On a pull-through cache, a blob the repository does not link comes from
``Proxy.blob``: streamed from its download's spool as it arrives, then served like any other.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from mdl.registry import names, paths
from mdl.registry.context import registry
from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.proxy import CACHE_STATUS, HIT, Passing
from mdl.registry.ranges import Unsatisfiable, byte_range
from mdl.spec.digest import Digest

log = logging.getLogger("mdl.registry")
OCTET_STREAM = "application/octet-stream"
PIECE = 1024 * 1024
REMOTE_PIECE = 4 * 1024 * 1024
"""Pieces from an object store are larger: each costs a thread hop and a socket read."""
PART = 512 * 1024


class WholeFile(FileResponse):
    """The whole file, always: ranges were decided before (a multi-range request gets all)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(key, value) for key, value in scope["headers"] if key != b"range"]
        await super().__call__({**scope, "headers": headers}, receive, send)


async def get(request: Request) -> Response:
    name = names.repository(request.path_params["name"])
    digest = names.digest(request.path_params["digest"])
    reg = registry(request)
    repos = reg.repos
    try:
        stat = await run_in_threadpool(repos.blob_stat, name, digest)
    except OCIError as exc:
        if reg.proxy is None or exc.code is not ErrorCode.BLOB_UNKNOWN:
            raise
        passing = await reg.proxy.blob(
            name, digest, head=request.method == "HEAD", ranged="range" in request.headers
        )
        if passing is not None:
            return _passing(request, digest, passing)
        stat = await run_in_threadpool(repos.blob_stat, name, digest)
    headers = _headers(digest)
    if reg.proxy is not None:
        headers[CACHE_STATUS] = HIT
    if request.method == "HEAD":
        headers["Content-Length"] = str(stat.size)
        return Response(status_code=200, headers=headers, media_type=OCTET_STREAM)
    key = paths.blob(digest)
    selected = _range(request, stat.size)
    driver = repos.driver
    if reg.redirect and (url := await run_in_threadpool(driver.url, key)) is not None:
        # A satisfiable Range (checked above) goes with the client to the storage.
        headers = {"Location": url, "Docker-Content-Digest": str(digest), "Content-Length": "0"}
        return Response(status_code=307, headers=headers)
    local = driver.local_path(key)
    if selected is None and local is not None:
        stat_result = await run_in_threadpool(os.stat, local)
        return WholeFile(local, headers=headers, media_type=OCTET_STREAM, stat_result=stat_result)
    first, length, status = _span(headers, selected, stat.size)
    reader = await run_in_threadpool(driver.open, key)
    piece = PIECE if local is not None else REMOTE_PIECE
    return StreamingResponse(
        _pieces(reader, first, length, piece),
        status_code=status,
        headers=headers,
        media_type=OCTET_STREAM,
    )


def _headers(digest: Digest) -> dict[str, str]:
    return {
        "Docker-Content-Digest": str(digest),
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "Cache-Control": "max-age=31536000",
    }


def _range(request: Request, size: int) -> tuple[int, int] | None:
    try:
        return byte_range(request.headers.get("range"), size)
    except Unsatisfiable:
        raise OCIError(
            ErrorCode.RANGE_NOT_SATISFIABLE,
            {"range": request.headers.get("range", "")[:100]},
            {"Content-Range": f"bytes */{size}"},
        ) from None


def _span(
    headers: dict[str, str], selected: tuple[int, int] | None, size: int
) -> tuple[int, int, int]:
    """(first byte, length, status) of the answer; sets its length and range headers."""
    first, last = selected if selected is not None else (0, size - 1)
    headers["Content-Length"] = str(last - first + 1)
    if selected is None:
        return first, last - first + 1, 200
    headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return first, last - first + 1, 206


def _passing(request: Request, digest: Digest, passing: Passing) -> Response:
    """A blob streamed as it arrives from the pull-through cache's upstream."""
    headers = {**_headers(digest), CACHE_STATUS: passing.status}
    if passing.fetch is None:  # a HEAD
        if passing.size is not None:
            headers["Content-Length"] = str(passing.size)
        return Response(status_code=200, headers=headers, media_type=OCTET_STREAM)
    try:
        first, length, status = 0, None, 200
        if passing.size is not None:
            selected = _range(request, passing.size)
            first, length, status = _span(headers, selected, passing.size)
    except BaseException:
        os.close(passing.fd)
        raise
    return Spooled(
        passing.fd,
        passing.fetch.pieces(passing.fd, first, length),
        status_code=status,
        headers=headers,
        media_type=OCTET_STREAM,
    )


class Spooled(StreamingResponse):
    """Streams from a download's spool, and closes its descriptor however the answer ends. A
    download that fails (a wrong digest, the upstream gone) ends the answer unfinished: the
    server cuts the connection short of ``Content-Length`` (or of the last chunk)."""

    def __init__(self, fd: int, content: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.fd = fd

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except OCIError as exc:
            log.warning("%s: answer cut short: %s", scope.get("path"), exc)
        finally:
            await run_in_threadpool(os.close, self.fd)


async def _pieces(reader: BinaryIO, offset: int, length: int, size: int) -> AsyncIterator[bytes]:
    """The reader's bytes in pieces, the next one read (in a worker thread) while the last one
    is being sent, so storage and client are busy at the same time (two pieces in memory).

    A piece is read and sent in parts of ``PART``: below glibc's mmap threshold (fixed at
    1 MiB, ``malloc.py``), so their buffers come from the heap again and again, where a 4 MiB
    ``bytes`` would be a fresh mapping whose pages fault in every time (allocating, filling
    and copying 4 MiB took 8-9 ms that way against 6-8 ms in 512 KiB parts, on a busy machine)."""

    def read(wanted: int) -> list[bytes]:
        parts: list[bytes] = []
        left = min(size, wanted)
        while left > 0 and (part := reader.read(min(PART, left))):
            parts.append(part)
            left -= len(part)
        return parts

    pending: asyncio.Future[list[bytes]] | None = None
    try:
        await run_in_threadpool(reader.seek, offset)
        pending = asyncio.ensure_future(run_in_threadpool(read, length))
        while pending is not None:
            parts = await pending
            pending = None
            if not parts:
                break
            length -= sum(len(part) for part in parts)
            if length > 0:
                pending = asyncio.ensure_future(run_in_threadpool(read, length))
            for part in parts:
                yield part
    finally:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
        reader.close()


async def delete(request: Request) -> Response:
    name = names.repository(request.path_params["name"])
    digest = names.digest(request.path_params["digest"])
    await run_in_threadpool(registry(request).repos.unlink_blob, name, digest)
    return Response(status_code=202, headers={"Content-Length": "0"})
