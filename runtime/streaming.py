"""The one streaming core of both APIs, and responses that stop their work when the client
goes away.

``answer`` turns an async generator of events into a response: streamed in the API's framing
(a ``Framing``: NDJSON lines for Ollama, SSE events for OpenAI), or (not streaming) collected
and summed into one JSON object. An error raised before the first event is raised, so it gets
a status code; one raised later, once the 200 is sent, becomes the stream's last frame in the
stream's own error format, never a cut connection.

``StreamResponse`` sends an async iterator of byte chunks and watches for ``http.disconnect``
meanwhile; on disconnect it cancels the stream and closes the iterator, which closes the
generation under it. ``until_disconnected`` does the same for an answer computed before it is
sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from mdl.runtime.errors import Disclose

T = TypeVar("T")
E = TypeVar("E")
Chunk = dict[str, Any]


@dataclass(frozen=True)
class Framing:
    """How one API frames a stream: its media type, one chunk, the error that ends a stream
    that fails midway (from status and message), and what ends one that succeeds."""

    media_type: str
    frame: Callable[[Chunk], bytes]
    error: Callable[[int, str], bytes]
    end: bytes = b""


def compact(chunk: Chunk) -> bytes:
    return json.dumps(chunk, separators=(",", ":")).encode()


async def answer(
    request: Request,
    events: AsyncGenerator[E, None],
    stream: bool,
    framing: Framing,
    render: Callable[[E], Iterable[Chunk]],
    whole: Callable[[list[E]], Chunk],
    disclose: Disclose,
) -> Response:
    """Stream ``render(event)`` chunks, or answer once with ``whole(events)``."""
    first = await first_item(request, events)
    if stream:
        where = f"{request.method} {request.url.path}"
        chunks = _frames(first, events, framing, render, disclose, where)
        return StreamResponse(chunks, framing.media_type)
    return JSONResponse(whole(await until_disconnected(request, _collect(first, events))))


async def _frames(
    first: E,
    events: AsyncGenerator[E, None],
    framing: Framing,
    render: Callable[[E], Iterable[Chunk]],
    disclose: Disclose,
    where: str,
) -> AsyncGenerator[bytes, None]:
    async with aclosing(events):
        try:
            for chunk in render(first):
                yield framing.frame(chunk)
            async for event in events:
                for chunk in render(event):
                    yield framing.frame(chunk)
        except Exception as exc:  # the status is sent: the error is the stream's last frame
            yield framing.error(*disclose(exc, where))
            return
    yield framing.end


async def _collect(first: E, events: AsyncGenerator[E, None]) -> list[E]:
    collected = [first]
    async with aclosing(events):
        async for event in events:
            collected.append(event)
    return collected


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


class StreamResponse(Response):
    def __init__(self, chunks: AsyncGenerator[bytes, None], media_type: str) -> None:
        self.chunks = chunks
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await send(
                    {"type": "http.response.start", "status": self.status_code,
                     "headers": self.raw_headers}
                )  # fmt: skip
                async for chunk in self.chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass  # the client went away while we were writing
            finally:
                with anyio.CancelScope(shield=True):
                    await self.chunks.aclose()
                group.cancel_scope.cancel()


async def first_item(request: Request, items: AsyncGenerator[T, None]) -> T:
    """The first item, which is where a stream's errors surface (before any byte is sent, so
    they can still get a status code); the generator is closed if that fails."""
    try:
        return await until_disconnected(request, anext(items))
    except BaseException:
        await items.aclose()
        raise


async def until_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it (and raising ClientGone) if the client disconnects first.
    An error ``work`` raises is raised as is."""
    results: list[T] = []
    errors: list[Exception] = []

    async with anyio.create_task_group() as group:

        async def run() -> None:
            try:
                results.append(await work)
            except Exception as exc:  # re-raised below, outside the task group
                errors.append(exc)
            group.cancel_scope.cancel()

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(run)
        group.start_soon(watch)
    if errors:
        raise errors[0]
    if not results:
        raise ClientGone()
    return results[0]
