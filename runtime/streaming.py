"""Responses that stop the work behind them when the client goes away.

``StreamResponse`` sends an async iterator of byte chunks (NDJSON lines or SSE events) and
watches for ``http.disconnect`` meanwhile; on disconnect it cancels the stream and closes the
iterator, which closes the generation under it. ``until_disconnected`` does the same for a
non-streaming answer that is computed before it is sent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from typing import TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

T = TypeVar("T")


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
