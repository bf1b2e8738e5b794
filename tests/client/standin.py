"""A registry with the habits of real ones, in front of distribution 2.8 on 127.0.0.1.

Blob GETs answer 307 to a second "storage" host (as GHCR, Docker Hub and Harbor on S3 do),
which serves the bytes with ranges and records the headers it was sent; chosen requests first
fail with 429 (Retry-After) or 503; the first blob GET can stall halfway through its body (as
a dying connection does); and, for Ollama's registry, ``GET /v2/`` is 404 and manifests come
back as ``text/plain``.

Hostile habits too: the registry can ask for basic or bearer credentials and the storage host for
a bearer token of its own (both hosts serve ``/token`` and record what they were sent); the
registry can send a huge manifest or a huge error body, an error message or a layer's file name
with escape sequences in it, or a referrers listing without end (or in pages); and it can
speak TLS while the storage host speaks plain HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
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
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

_HOP = {"host", "content-length", "transfer-encoding", "connection"}
_OCI_INDEX = "application/vnd.oci.image.index.v1+json"


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
    challenge: str = ""
    """"basic" or "bearer": the registry answers 401 until a request carries credentials."""
    realm_on_storage: bool = False
    """The registry's bearer realm is the storage host's /token (always plain HTTP)."""
    storage_challenge: bool = False
    token_needs_credentials: bool = False
    """Both /token endpoints refuse (401) a request without basic credentials."""
    echo_realm: bool = False
    """The storage host's challenge names the registry's realm, service and scope instead (to
    be handed the registry's token), and it takes any bearer token."""
    """The storage host answers 401 with a bearer challenge pointing at itself."""
    huge_manifest: int = 0
    """Bytes of a never-ending "manifest" every manifest GET answers with (200)."""
    huge_error: int = 0
    """Bytes of an error body every manifest GET answers with (404)."""
    huge_detour: int = 0
    """Bytes of the body of every 307 (blob GETs) or 401 (requests without credentials) the
    registry answers with, as ``detour`` says."""
    detour: int = 307
    declare_length: bool = False
    """Whether the huge answers say their length (else they come chunked)."""
    deny_message: str = ""
    """Manifest GETs are denied (403) with this message."""
    layer_title: str = ""
    """The file name the last layer of a manifest GET's answer gets."""
    config_size: int = 0
    """The size a manifest GET's answer claims for its config."""
    registry_auth: list[str] = field(default_factory=list)
    """The Authorization header of every request to the registry that had one."""
    storage_auth: list[str] = field(default_factory=list)
    """The Authorization header of every blob request the storage host got that had one."""
    token_requests: list[dict[str, str]] = field(default_factory=list)
    """host ("registry" or "storage"), authorization and query of every /token request."""
    streamed: int = 0
    """Bytes of huge answers handed to the server before the client stopped reading."""
    storage_host: str = ""
    """host:port of the storage host, set when the stand-in starts."""
    referrers: int = 0
    """How many (made-up) signature manifests the referrers API lists for every subject."""
    listed_gets: int = 0
    """Requests for one of those made-up manifests."""
    page_referrers: bool = False
    """The registry has a referrers API: it answers from distribution's referrers tag index,
    one entry per page, each page linking to the next (``Link: <…>; rel="next"``)."""
    pages: int = 0
    """Pages of referrers served."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_OPTIONS = (
    "redirect_blobs",
    "ollama",
    "failures",
    "stall_blobs",
    "challenge",
    "realm_on_storage",
    "storage_challenge",
    "token_needs_credentials",
    "echo_realm",
    "huge_manifest",
    "huge_error",
    "huge_detour",
    "detour",
    "declare_length",
    "deny_message",
    "layer_title",
    "config_size",
    "referrers",
    "page_referrers",
)
_RECORDS = (
    "storage_headers",
    "storage_spans",
    "failed",
    "failures",
    "stall_blobs",
    "registry_auth",
    "storage_auth",
    "token_requests",
    "streamed",
    "listed_gets",
    "pages",
)


def _apps(
    upstream: str, quirks: Quirks, registry_url: str, storage_url: str
) -> tuple[Starlette, Starlette]:
    client = httpx.AsyncClient(base_url=f"http://{upstream}", timeout=60)

    def token(host: str) -> Route:
        async def issue(request: Request) -> Response:
            authorization = request.headers.get("authorization", "")
            query = str(request.query_params)
            quirks.token_requests.append(
                {"host": host, "authorization": authorization, "query": query}
            )
            if quirks.token_needs_credentials and not authorization.startswith("Basic "):
                return Response(b"", 401)
            user = ""
            if authorization.startswith("Basic "):
                user = "-for-" + base64.b64decode(authorization[6:]).decode().partition(":")[0]
            return JSONResponse({"token": f"{host}-token{user}", "expires_in": 300})

        return Route("/token", issue)

    def challenge(realm: str, service: str, scope: str) -> Response:
        header = f'Bearer realm="{realm}",service="{service}",scope="{scope}"'
        return Response(b'{"errors":[]}', 401, {"WWW-Authenticate": header})

    def huge(
        request: Request, size: int, status: int, headers: dict[str, str] | None = None
    ) -> Response:
        start, piece = b'{"errors":[{"code":"DENIED","message":"', b"x" * 65536

        async def body() -> AsyncIterator[bytes]:
            yield start
            while quirks.streamed < size and not await request.is_disconnected():
                quirks.streamed += len(piece)
                yield piece

        whole = len(start) + -(-size // len(piece)) * len(piece)
        headers = dict(headers or {})
        if quirks.declare_length:
            headers["content-length"] = str(whole)
        return StreamingResponse(body(), status, headers, media_type="application/json")

    altered: dict[str, Response] = {}  # digest -> a manifest rewritten by alter()
    made_up = [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + hashlib.sha256(str(n).encode()).hexdigest(),
            "size": 512,
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        }
        for n in range(quirks.referrers)
    ]

    async def alter(request: Request, path: str) -> Response:
        """The manifest with its last layer renamed or its config resized; an index's children
        are rewritten too, and the index names them by their new digests."""
        repository, _, reference = path.rpartition("/")
        if reference in altered:
            return altered[reference]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        answer = await client.get(path, headers=headers)
        doc = json.loads(answer.content)
        for child in doc.get("manifests", []):
            changed = await alter(request, f"{repository}/{child['digest']}")
            child["digest"] = "sha256:" + hashlib.sha256(changed.body).hexdigest()
            child["size"] = len(changed.body)
        if "layers" in doc and quirks.layer_title:
            doc["layers"][-1]["annotations"]["org.cncf.model.filepath"] = quirks.layer_title
        if "config" in doc and quirks.config_size:
            doc["config"]["size"] = quirks.config_size
        data = json.dumps(doc).encode()
        changed = Response(data, answer.status_code, media_type=answer.headers["content-type"])
        altered["sha256:" + hashlib.sha256(data).hexdigest()] = changed
        return changed

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
        authorization = request.headers.get("authorization")
        if authorization:
            quirks.registry_auth.append(authorization)
        if quirks.huge_detour and quirks.detour == 401 and not authorization:
            basic = {"WWW-Authenticate": 'Basic realm="standin"'}
            return huge(request, quirks.huge_detour, 401, basic)
        if quirks.challenge == "basic" and not authorization:
            return Response(b"", 401, {"WWW-Authenticate": 'Basic realm="standin"'})
        tokens = ("Bearer registry-token", "Bearer storage-token")
        if quirks.challenge == "bearer" and not (authorization or "").startswith(tokens):
            realm = f"{storage_url if quirks.realm_on_storage else registry_url}/token"
            return challenge(realm, "standin", "repository:quirks:pull")
        blob_get = request.method == "GET" and "/blobs/sha256:" in path
        if quirks.huge_detour and quirks.detour == 307 and blob_get:
            location = {"location": f"{storage_url}{path}"}
            return huge(request, quirks.huge_detour, 307, location)
        if quirks.redirect_blobs and blob_get:
            return RedirectResponse(f"{storage_url}{path}?signature=abc", 307)
        if quirks.stall_blobs and blob_get:
            quirks.stall_blobs -= 1
            return await stall_halfway(request, path)
        if quirks.referrers and "/referrers/" in path:
            return JSONResponse(
                {"schemaVersion": 2, "mediaType": _OCI_INDEX, "manifests": made_up},
                media_type=_OCI_INDEX,
            )
        if quirks.page_referrers and "/referrers/" in path:
            return await referrers_page(request, path)
        if any(path.endswith(entry["digest"]) for entry in made_up):
            quirks.listed_gets += 1
        manifest = "/manifests/" in path and request.method in ("GET", "HEAD")
        if manifest and request.method == "GET":
            if quirks.huge_manifest:
                return huge(request, quirks.huge_manifest, 200)
            if quirks.huge_error:
                return huge(request, quirks.huge_error, 404)
            if quirks.deny_message:
                error = {"code": "DENIED", "message": quirks.deny_message}
                return JSONResponse({"errors": [error]}, 403)
            if quirks.layer_title or quirks.config_size:
                return await alter(request, path)
        return await forward(request, path, "text/plain" if manifest and quirks.ollama else None)

    async def referrers_page(request: Request, path: str) -> Response:
        name, _, digest = path.removeprefix("/v2/").partition("/referrers/")
        tag = digest.replace(":", "-")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        index = await client.get(f"/v2/{name}/manifests/{tag}", headers=headers)
        entries = index.json()["manifests"] if index.status_code == 200 else []
        page = int(request.query_params.get("page", "0"))
        link = {"Link": f'<{path}?page={page + 1}>; rel="next"'} if page + 1 < len(entries) else {}
        quirks.pages += 1
        doc = {"schemaVersion": 2, "mediaType": _OCI_INDEX, "manifests": entries[page : page + 1]}
        return JSONResponse(doc, headers=link, media_type=_OCI_INDEX)

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
        authorization = request.headers.get("authorization")
        if authorization:
            quirks.storage_auth.append(authorization)
        if quirks.storage_challenge and quirks.echo_realm:
            if not (authorization or "").startswith("Bearer "):
                return challenge(f"{registry_url}/token", "standin", "repository:quirks:pull")
        elif quirks.storage_challenge and authorization != "Bearer storage-token":
            return challenge(f"{storage_url}/token", "storage", "blob")
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
    front = Starlette(routes=[token("registry"), Route("/{path:path}", registry, methods=methods)])
    back = Starlette(routes=[token("storage"), Route("/{path:path}", storage, methods=["GET"])])
    return front, back


@contextmanager
def standin(upstream: str, quirks: Quirks, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve the quirky registry in a child process; yields its host:port. With ``tls``
    (certificate, key) the registry speaks HTTPS. When it stops, what it recorded (the
    storage host's request headers, the failures it answered, ...) is filled into ``quirks``."""
    front, back = _free_port(), _free_port()
    quirks.storage_host = f"127.0.0.1:{back}"
    with tempfile.TemporaryDirectory() as scratch:
        record = Path(scratch) / "record.json"
        args = [
            sys.executable,
            __file__,
            upstream,
            str(front),
            str(back),
            str(record),
            json.dumps({name: getattr(quirks, name) for name in _OPTIONS}),
            json.dumps([str(path) for path in tls] if tls else []),
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
        for name in _RECORDS:
            setattr(quirks, name, done[name])
        quirks.storage_spans[:] = [tuple(span) for span in done["storage_spans"]]


def _serve(
    upstream: str, front_port: int, back_port: int, record: Path, options: str, tls: str
) -> None:
    quirks = Quirks(**json.loads(options))
    cert = json.loads(tls)
    scheme = "https" if cert else "http"
    front, back = _apps(
        upstream, quirks, f"{scheme}://127.0.0.1:{front_port}", f"http://127.0.0.1:{back_port}"
    )
    ssl = {"ssl_certfile": cert[0], "ssl_keyfile": cert[1]} if cert else {}
    servers = [
        uvicorn.Server(
            uvicorn.Config(front, host="127.0.0.1", port=front_port, log_level="warning", **ssl)
        ),
        uvicorn.Server(uvicorn.Config(back, host="127.0.0.1", port=back_port, log_level="warning")),
    ]

    async def both() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    try:
        asyncio.run(both())
    except KeyboardInterrupt:
        pass  # the parent stops us with SIGINT
    finally:
        record.write_text(json.dumps({name: getattr(quirks, name) for name in _RECORDS}))


if __name__ == "__main__":
    _serve(
        sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5], sys.argv[6]
    )
