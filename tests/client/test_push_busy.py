"""A chunked push answered 409 ``UPLOAD_BUSY`` with ``Retry-After``, or cut after the registry
kept a chunk, waits as told, asks where the upload stands and sends only the rest; busy for
longer than ``MDL_BUSY_TIMEOUT``, it gives up with the registry's error.

The registry is mdl's, behind a stand-in (a thread of the test) that answers chosen PATCHes
itself and records every upload request it passes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from cli_runner import MdlRunner, Run
from client_registries import Registry
from ggufs import write_padded_llama
from servers import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CHUNK = 256 * 1024
_HOP = {"host", "content-length", "transfer-encoding", "connection"}
_BUSY = {  # as mdl's registry answers UPLOAD_BUSY
    "errors": [{"code": "BLOB_UPLOAD_INVALID", "message": "another request is writing to it"}]
}


@dataclass
class Script:
    """What the stand-in does to the n-th PATCH (counting from 1): ``busy`` ones are answered
    409 with ``Retry-After: 1`` unseen by the registry; ``cut`` ones reach the registry whole,
    and then the client is answered 502 (a replica that died before its answer left)."""

    busy: set[int] = field(default_factory=set)
    busy_from: int = 0
    cut: set[int] = field(default_factory=set)
    seen: list[tuple[float, str, str, int, str]] = field(default_factory=list)
    """(time, method, Content-Range, status answered, path) of every upload request."""

    def answered(self, method: str, status: int) -> list[tuple[float, str, str, int, str]]:
        return [entry for entry in self.seen if entry[1] == method and entry[3] == status]

    def after(self, moment: float, path: str) -> list[tuple[float, str, str, int, str]]:
        """The requests on the upload at ``path`` after ``moment``."""
        return [entry for entry in self.seen if entry[0] > moment and entry[4] == path]


@contextmanager
def standin(upstream: str, script: Script) -> Iterator[str]:
    patches = 0

    async def relay(request: Request) -> Response:
        nonlocal patches
        path, method = request.url.path, request.method
        spans = request.headers.get("content-range", "")
        if method == "PATCH":
            patches += 1
            if patches in script.busy or (script.busy_from and patches >= script.busy_from):
                await request.body()
                script.seen.append((time.monotonic(), method, spans, 409, path))
                return JSONResponse(_BUSY, 409, {"Retry-After": "1"})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with httpx.AsyncClient(base_url=upstream, timeout=60) as client:
            answer = await client.request(
                method,
                path,
                headers=headers,
                content=await request.body(),
                params=request.query_params,
            )
        status = 502 if method == "PATCH" and patches in script.cut else answer.status_code
        if "/blobs/uploads/" in path:
            script.seen.append((time.monotonic(), method, spans, status, path))
        out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        return Response(b"" if status == 502 else answer.content, status, out)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", relay, methods=methods)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the stand-in did not start"
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture
def model(mdl: MdlRunner, tmp_path: Path) -> str:
    """A local model 'chunky' whose weights (about 1 MiB) go in five PATCHes of 256 KiB."""
    write_padded_llama(tmp_path / "chunky.gguf", 1)
    (tmp_path / "Modelfile").write_text("FROM ./chunky.gguf\n")
    return mdl("build", "-q", "-t", "chunky", cwd=tmp_path).out.strip()


def _push(mdl: MdlRunner, host: str, name: str, *, ok: bool = True, **env: str) -> Run:
    env = {"MDL_CHUNK_SIZE": str(CHUNK), **env}
    return mdl("push", "chunky", f"{host}/{name}:1", "--json", ok=ok, env=env)


def _ranges(script: Script) -> list[str]:
    """The Content-Range of every PATCH the registry accepted, in order."""
    return [entry[2] for entry in script.answered("PATCH", 202)]


def _pulls_back(mdl: MdlRunner, registry: Registry, name: str, digest: str, home: Path) -> None:
    pulled = mdl("pull", f"{registry.host}/{name}:1", "-q", env={"MDL_HOME": str(home)})
    assert pulled.out.strip() == digest


def _push_through(
    mdl: MdlRunner, registry: Registry, script: Script, name: str, model: str, status: int
) -> tuple[float, str, str, int, str]:
    """Push 'chunky' through the stand-in; the one PATCH it answered ``status`` (the second
    chunk's)."""
    with standin(registry.server.url, script) as host:
        assert _push(mdl, host, name).json()["digest"] == model
    (failed,) = script.answered("PATCH", status)
    assert failed[2] == f"{CHUNK}-{2 * CHUNK - 1}"
    return failed


def test_a_busy_upload_is_waited_out_and_continued_where_it_stands(
    mdl: MdlRunner, model: str, mdl_registry: Registry, tmp_path: Path
) -> None:
    script = Script(busy={2})
    refused = _push_through(mdl, mdl_registry, script, "busy/once", model, 409)
    after = script.after(refused[0], refused[4])
    assert after[0][1] == "GET" and after[0][3] == 204  # it asked where the upload stands
    assert after[0][0] - refused[0] >= 1.0  # ... once Retry-After had passed
    assert after[1][1:3] == ("PATCH", refused[2])  # and sent that chunk again, not all
    ranges = _ranges(script)
    assert ranges[0].startswith("0-") and [r for r in ranges if r.startswith("0-")] == ranges[:1]
    _pulls_back(mdl, mdl_registry, "busy/once", model, tmp_path / "puller")


def test_a_chunk_the_registry_kept_is_not_sent_again_after_a_cut_answer(
    mdl: MdlRunner, model: str, mdl_registry: Registry, tmp_path: Path
) -> None:
    script = Script(cut={2})
    cut = _push_through(mdl, mdl_registry, script, "busy/cut", model, 502)
    ranges = _ranges(script)
    assert cut[2] not in ranges  # the registry said it had it: it went once
    assert ranges[:2] == [f"0-{CHUNK - 1}", f"{2 * CHUNK}-{3 * CHUNK - 1}"]
    _pulls_back(mdl, mdl_registry, "busy/cut", model, tmp_path / "puller")


def test_an_upload_busy_for_longer_than_the_budget_fails_with_the_registrys_error(
    mdl: MdlRunner, model: str, mdl_registry: Registry
) -> None:
    script = Script(busy_from=2)
    with standin(mdl_registry.server.url, script) as host:
        started = time.monotonic()
        failed = _push(mdl, host, "busy/always", ok=False, MDL_BUSY_TIMEOUT="2.5")
        took = time.monotonic() - started
    assert failed.code != 0
    assert "409 BLOB_UPLOAD_INVALID" in failed.err and "Traceback" not in failed.err
    assert "still busy after 2 s of waiting (MDL_BUSY_TIMEOUT)" in failed.err
    assert len(script.answered("PATCH", 409)) == 3  # 1 s, 1 s, and a third would pass 2.5 s
    assert took < 30
