"""Blob upload endpoints: monolithic POST, POST+PUT, chunked and streamed PATCH, status, cancel,
and cross-repository mount.

The body is never held whole: it is gathered into 1 MiB buffers (an upload holds one or two),
each written and hashed by a worker thread while the next one arrives. A chunk must start where
the upload ends (416 with the current ``Range`` otherwise); a PATCH without ``Content-Range``
(skopeo's habit) appends the whole body. Every upload response carries ``Location``, ``Range``
and ``Docker-Upload-UUID``. A request that changes an upload holds it (``sessions.Session``)
from start to end; another request on the same upload meanwhile is UPLOAD_BUSY (409), in this
process or any other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mdl.registry import names
from mdl.registry.context import Registry, may, registry
from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.ranges import content_range, upload_range
from mdl.registry.sessions import Session, Sink
from mdl.spec.digest import Digest
from mdl.spec.routes import BLOB, UPLOAD

FLUSH = 1024 * 1024


def _session_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": UPLOAD.path(name=name, uuid=upload_id),
        "Range": upload_range(size),
        "Docker-Upload-UUID": upload_id,
        "Content-Length": "0",
    }


def _created(name: str, digest: Digest) -> Response:
    headers = {
        "Location": BLOB.path(name=name, digest=str(digest)),
        "Docker-Content-Digest": str(digest),
        "Content-Length": "0",
    }
    return Response(status_code=201, headers=headers)


async def start(request: Request) -> Response:
    """POST: mount, monolithic upload (``?digest=``), or a new session (202)."""
    name = names.repository(request.path_params["name"])
    reg = registry(request)
    params = request.query_params
    if (mount := params.get("mount")) is not None:
        digest = names.digest(mount)
        if await _mount(request, reg, name, digest, params.get("from")):
            return _created(name, digest)
    if (digest_text := params.get("digest")) is not None:
        digest = names.digest(digest_text)
        upload_id = await run_in_threadpool(reg.uploads.create, name, digest.algorithm)
        async with _held(reg, name, upload_id) as session:
            try:
                await _append(request, session, None, None)
                await run_in_threadpool(session.commit, digest)
            except BaseException:
                await run_in_threadpool(session.cancel)
                raise
        return _created(name, digest)
    upload_id = await run_in_threadpool(reg.uploads.create, name, params.get("digest-algorithm"))
    return Response(status_code=202, headers=_session_headers(name, upload_id, 0))


async def _mount(
    request: Request, reg: Registry, name: str, digest: Digest, source: str | None
) -> bool:
    if source:
        source = names.repository(source)
        if not may(request, source, "pull"):
            return False
        if not await run_in_threadpool(reg.repos.has_blob, source, digest):
            return False
    elif not reg.open_access:
        return False  # an anonymous mount could read any repository's blobs
    return await run_in_threadpool(reg.repos.mount, name, digest)


async def patch(request: Request) -> Response:
    """PATCH: append a chunk (``Content-Range``) or the whole streamed body."""
    name, upload_id = _ids(request)
    async with _held(registry(request), name, upload_id) as session:
        expected = _chunk_length(request, name, upload_id, session.size)
        await _append(request, session, expected, None)
        size = session.size
    return Response(status_code=202, headers=_session_headers(name, upload_id, size))


async def finish(request: Request) -> Response:
    """PUT ``?digest=``: append a last chunk if the request has one, verify, publish (201)."""
    name, upload_id = _ids(request)
    digest_text = request.query_params.get("digest")
    if not digest_text:
        raise OCIError(ErrorCode.DIGEST_INVALID, "the digest query parameter is required")
    digest = names.digest(digest_text)
    async with _held(registry(request), name, upload_id) as session:
        if _has_body(request):
            expected = _chunk_length(request, name, upload_id, session.size)
            algorithm = digest.algorithm if session.size == 0 else None
            await _append(request, session, expected, algorithm)
        await run_in_threadpool(session.commit, digest)
    return _created(name, digest)


async def status(request: Request) -> Response:
    """GET: where the upload stands (204 with ``Range``)."""
    name, upload_id = _ids(request)
    offset = await run_in_threadpool(registry(request).uploads.offset, name, upload_id)
    return Response(status_code=204, headers=_session_headers(name, upload_id, offset))


async def cancel(request: Request) -> Response:
    """DELETE: abandon the upload (204)."""
    name, upload_id = _ids(request)
    async with _held(registry(request), name, upload_id) as session:
        await run_in_threadpool(session.cancel)
    return Response(status_code=204, headers={"Content-Length": "0"})


@asynccontextmanager
async def _held(reg: Registry, name: str, upload_id: str) -> AsyncIterator[Session]:
    """The session, locked across processes for the whole request."""
    session = await run_in_threadpool(reg.uploads.hold, name, upload_id)
    try:
        yield session
    finally:
        await run_in_threadpool(session.release)


def _ids(request: Request) -> tuple[str, str]:
    name = names.repository(request.path_params["name"])
    return name, names.upload_id(request.path_params["uuid"])


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _chunk_length(request: Request, name: str, upload_id: str, offset: int) -> int | None:
    """The chunk's declared length, after checking it continues the upload; None if unstated."""
    header = request.headers.get("content-range")
    if header is None:
        return None
    declared = content_range(header)
    if declared is None:
        raise OCIError(ErrorCode.BLOB_UPLOAD_INVALID, {"Content-Range": header[:100]})
    first, last = declared
    if first != offset:
        headers = _session_headers(name, upload_id, offset)
        del headers["Content-Length"]
        raise OCIError(
            ErrorCode.BLOB_UPLOAD_OUT_OF_ORDER,
            {"Content-Range": header[:100], "offset": offset},
            headers,
        )
    length = last - first + 1
    content_length = request.headers.get("content-length")
    if content_length is not None and content_length.strip() != str(length):
        detail = {"Content-Range": header[:100], "Content-Length": content_length[:20]}
        raise OCIError(ErrorCode.SIZE_INVALID, detail)
    return length


async def _append(
    request: Request, session: Session, expected: int | None, algorithm: str | None
) -> None:
    """Stream the body onto the session. A declared chunk is all or nothing: on a short or long
    body, or any failure, the session goes back to where it was."""
    sink = await run_in_threadpool(session.sink, algorithm)
    try:
        received = await _stream_into(request, sink, expected)
        if expected is not None and received != expected:
            raise OCIError(ErrorCode.SIZE_INVALID, {"expected": expected, "received": received})
    except BaseException:
        undo = expected is not None
        await run_in_threadpool(lambda: session.appended(sink, ok=False, undo=undo))
        raise
    await run_in_threadpool(lambda: session.appended(sink, ok=True))


async def _stream_into(request: Request, sink: Sink, limit: int | None) -> int:
    received = 0
    buffer = bytearray()
    pending: asyncio.Future[Any] | None = None
    try:
        async for piece in request.stream():
            received += len(piece)
            if limit is not None and received > limit:
                raise OCIError(ErrorCode.SIZE_INVALID, {"expected": limit, "received": received})
            buffer += piece
            if len(buffer) >= FLUSH:
                if pending is not None:
                    await pending
                # handed over: no name here keeps it once the sink is done with it
                pending = asyncio.ensure_future(run_in_threadpool(sink.write, buffer))
                buffer = bytearray()
        if pending is not None:
            await pending
            pending = None
        if buffer:
            await run_in_threadpool(sink.write, buffer)
    finally:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
    return received
