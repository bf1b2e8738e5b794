"""Request bodies are bounded where they enter the app: ASGI middleware that counts the bytes.

The count is of the bytes received, so a chunked body (no ``Content-Length``) is bounded as
well as a declared one; a declared length past the limit is refused before any byte is read.
Past the limit, reading the body raises TooLarge (413). ``/api/blobs`` uploads, which are
streamed to disk, have their own, larger limit.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mdl.runtime.errors import TooLarge

BLOBS_PREFIX = "/api/blobs/"


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int, blobs: int) -> None:
        self.app = app
        self.limit = limit
        self.blobs = blobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        blob = str(scope.get("path", "")).startswith(BLOBS_PREFIX)
        limit, setting = (self.blobs, "MDL_MAX_BLOB_BYTES") if blob else (
            self.limit, "MDL_MAX_REQUEST_BYTES"
        )  # fmt: skip
        declared = _content_length(scope)
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if max(received, declared) > limit:
                    raise TooLarge(f"the request body is larger than {limit} bytes ({setting})")
            return message

        await self.app(scope, bounded, send)


def _content_length(scope: Scope) -> int:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
