"""A registry with the habits of real ones, in front of distribution 2.8 on 127.0.0.1.

Blob GETs answer 307 to a second "storage" host (as GHCR, Docker Hub and Harbor on S3 do),
which serves the bytes with ranges and records the headers it was sent; chosen requests first
fail with 429 (Retry-After) or 503; the first blob GET can stall halfway through its body (as
a dying connection does); and, for Ollama's registry, ``GET /v2/`` is 404 and manifests come
back as ``text/plain``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

_HOP = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass
class Quirks:
    redirect_blobs: bool = False
    ollama: bool = False
    failures: list[int] = field(default_factory=list)
    """Statuses to answer, one per request, before passing requests through."""
    stall_blobs: int = 0
    """How many blob GETs send half their body, then nothing more (the header promised all)."""
    storage_headers: list[dict[str, str]] = field(default_factory=list)
    storage_spans: list[tuple[str, float, float]] = field(default_factory=list)
    """(Range header, start, end) of every blob download the storage host served."""
    failed: list[int] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _apps(upstream: str, quirks: Quirks, storage_url: str) -> tuple[Starlette, Starlette]:
    client = httpx.AsyncClient(base_url=f"http://{upstream}", timeout=60)

    async def forward(request: Request, path: str, content_type: str | None = None) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.body()
        answer = await client.request(
            request.method, path, headers=headers, content=body, params=request.query_params
        )
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        if content_type:
            out["content-type"] = content_type
        return Response(answer.content, answer.status_code, out)

    async def registry(request: Request) -> Response:
        path = request.url.path
        if quirks.failures:
            status = quirks.failures.pop(0)
            quirks.failed.append(status)
            return Response(b"", status, {"Retry-After": "1"} if status == 429 else {})
        if path == "/v2/" and quirks.ollama:
            return Response(b"404 page not found", 404)
        blob_get = request.method == "GET" and "/blobs/sha256:" in path
        if quirks.redirect_blobs and blob_get:
            return RedirectResponse(f"{storage_url}{path}?signature=abc", 307)
        if quirks.stall_blobs and blob_get:
            quirks.stall_blobs -= 1
            return await stall_halfway(request, path)
        manifest = "/manifests/" in path and request.method in ("GET", "HEAD")
        return await forward(request, path, "text/plain" if manifest and quirks.ollama else None)

    async def stall_halfway(request: Request, path: str) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() == "range"}
        answer = await client.get(path, headers=headers)
        body = answer.content

        async def half_then_silence() -> AsyncIterator[bytes]:
            yield body[: len(body) // 2]
            await asyncio.sleep(60)  # cancelled when the client gives up and disconnects

        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        out["content-length"] = str(len(body))
        return StreamingResponse(half_then_silence(), answer.status_code, out)

    async def storage(request: Request) -> Response:
        if request.url.path == "/ready":
            return Response(b"ok")
        quirks.storage_headers.append(dict(request.headers))
        headers = {k: v for k, v in request.headers.items() if k.lower() == "range"}
        upstream_request = client.build_request("GET", request.url.path, headers=headers)
        started = time.monotonic()
        answer = await client.send(upstream_request, stream=True)

        async def body() -> AsyncIterator[bytes]:
            async for chunk in answer.aiter_raw():
                yield chunk
            quirks.storage_spans.append((headers.get("range", ""), started, time.monotonic()))

        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        return StreamingResponse(body(), answer.status_code, out, background=None)

    methods = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]
    front = Starlette(routes=[Route("/{path:path}", registry, methods=methods)])
    back = Starlette(routes=[Route("/{path:path}", storage, methods=["GET"])])
    return front, back


@contextmanager
def standin(upstream: str, quirks: Quirks) -> Iterator[str]:
    """Serve the quirky registry in a child process; yields its host:port. When it stops, the
    storage host's request headers and the failures it answered are filled into ``quirks``."""
    front, back = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as scratch:
        record = Path(scratch) / "record.json"
        args = [
            sys.executable,
            __file__,
            upstream,
            str(front),
            str(back),
            str(record),
            json.dumps(
                {
                    "redirect_blobs": quirks.redirect_blobs,
                    "ollama": quirks.ollama,
                    "failures": quirks.failures,
                    "stall_blobs": quirks.stall_blobs,
                }
            ),
        ]
        with subprocess.Popen(args) as child:
            try:
                deadline = time.monotonic() + 15
                while True:
                    try:
                        httpx.get(f"http://127.0.0.1:{back}/ready")
                        break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline and child.poll() is None
                        time.sleep(0.05)
                yield f"127.0.0.1:{front}"
            finally:
                child.send_signal(signal.SIGINT)
                child.wait(timeout=15)
        done = json.loads(record.read_text())
        quirks.storage_headers[:] = done["storage_headers"]
        quirks.storage_spans[:] = [tuple(span) for span in done["storage_spans"]]
        quirks.failed[:] = done["failed"]
        quirks.failures[:] = done["failures"]
        quirks.stall_blobs = done["stall_blobs"]


def _serve(upstream: str, front_port: int, back_port: int, record: Path, options: str) -> None:
    quirks = Quirks(**json.loads(options))
    front, back = _apps(upstream, quirks, f"http://127.0.0.1:{back_port}")
    servers = [
        uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        for app, port in ((front, front_port), (back, back_port))
    ]

    async def both() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    try:
        asyncio.run(both())
    except KeyboardInterrupt:
        pass  # the parent stops us with SIGINT
    finally:
        record.write_text(
            json.dumps(
                {
                    "storage_headers": quirks.storage_headers,
                    "storage_spans": quirks.storage_spans,
                    "failed": quirks.failed,
                    "failures": quirks.failures,
                    "stall_blobs": quirks.stall_blobs,
                }
            )
        )


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
