"""Peers for the pull-through cache tests: what distribution's access log says the cache asked
for, and a stand-in upstream (in a thread) that can hold a blob half-sent or send wrong bytes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import uvicorn
from oci import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, descriptor, encode, push_manifest
from servers import RunningServer, free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

PROXY_AGENT = "mdl-registry-proxy"
_LINE = re.compile(r'"([A-Z]+) (/v2/\S*) HTTP/[0-9.]+" (\d+) \S+ "[^"]*" "([^"]*)"')
MiB = 1024 * 1024


def upstream_requests(server: RunningServer, method: str, part: str = "") -> list[str]:
    """Paths of the ``method`` requests the cache sent to distribution (its access log, on
    its stdout), whose path holds ``part``."""
    found = []
    for line in server.log().splitlines():
        match = _LINE.search(line)
        if match and (match.group(4), match.group(1)) == (PROXY_AGENT, method):
            found += [match.group(2)] if part in match.group(2) else []
    return found


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload(client: httpx.Client, repo: str, data: bytes) -> str:
    """POST then PUT, as distribution 2.8 takes a blob (it has no monolithic POST)."""
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    digest = sha256(data)
    location = started.headers["location"]
    location += ("&" if "?" in location else "?") + urlencode({"digest": digest})
    done = client.put(location, content=data)
    assert done.status_code == 201, done.text
    return digest


CONFIG = encode({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})


def manifest(*layers: bytes) -> bytes:
    """An OCI image manifest of ``CONFIG`` and ``layers``."""
    return encode(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, CONFIG),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        }
    )


def image(client: httpx.Client, repo: str, tag: str | None) -> tuple[str, bytes]:
    """A small image (``CONFIG``, one random layer) pushed as distribution 2.8 takes it."""
    layer = os.urandom(300)
    upload(client, repo, CONFIG)
    upload(client, repo, layer)
    body = manifest(layer)
    pushed = push_manifest(client, repo, tag, body, OCI_MANIFEST)
    assert pushed.status_code == 201, pushed.text
    return sha256(body), body


@dataclass
class StandIn:
    """An upstream registry serving what the test puts in ``manifests`` and ``blobs``."""

    url: str = ""
    manifests: dict[str, tuple[bytes, str, str]] = field(default_factory=dict)
    """reference -> (bytes, media type, the Docker-Content-Digest to claim)"""
    blobs: dict[str, bytes] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    """Blob digests whose last byte is sent changed."""
    held: dict[str, threading.Event] = field(default_factory=dict)
    """Blob digests whose first MiB is sent at once and the rest once the event is set."""
    sent: list[str] = field(default_factory=list)
    """``METHOD path`` of every request."""
    refuse: dict[str, int] = field(default_factory=dict)
    """path -> a status to answer it with instead (429 comes with ``Retry-After: 7``)."""

    def app(self) -> Starlette:
        async def base(request: Request) -> Response:
            return JSONResponse({})

        async def manifest(request: Request) -> Response:
            self.sent.append(f"{request.method} {request.url.path}")
            if status := self.refuse.get(request.url.path):
                return JSONResponse({"errors": []}, status, {"Retry-After": "7"})
            found = self.manifests.get(request.path_params["reference"])
            if found is None:
                return JSONResponse({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, 404)
            data, media_type, claimed = found
            headers = {"Docker-Content-Digest": claimed}
            return Response(data, headers=headers, media_type=media_type)

        async def blob(request: Request) -> Response:
            self.sent.append(f"{request.method} {request.url.path}")
            digest = request.path_params["digest"]
            data = self.blobs.get(digest)
            if data is None:
                return JSONResponse({"errors": [{"code": "BLOB_UNKNOWN"}]}, 404)
            if digest in self.corrupt:
                data = data[:-1] + bytes([data[-1] ^ 1])
            headers = {"Content-Length": str(len(data)), "Docker-Content-Digest": digest}
            if request.method == "HEAD":
                return Response(headers=headers)
            gate = self.held.get(digest)
            return StreamingResponse(_body(data, gate), headers=headers)

        return Starlette(
            routes=[
                Route("/v2/", base),
                Route("/v2/{name:path}/manifests/{reference}", manifest, methods=["GET", "HEAD"]),
                Route("/v2/{name:path}/blobs/{digest}", blob, methods=["GET", "HEAD"]),
            ]
        )


async def _body(data: bytes, gate: threading.Event | None) -> AsyncIterator[bytes]:
    if gate is None:
        yield data
        return
    yield data[:MiB]
    await asyncio.to_thread(gate.wait, 60)
    yield data[MiB:]


@contextmanager
def start_standin() -> Iterator[StandIn]:
    standin = StandIn()
    port = free_port()
    standin.url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(standin.app(), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the stand-in upstream to start")
    try:
        yield standin
    finally:
        for gate in standin.held.values():
            gate.set()
        server.should_exit = True
        thread.join(timeout=10)
