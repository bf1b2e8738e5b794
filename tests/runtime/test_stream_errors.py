"""A failure in the middle of a stream reaches the client in the stream's own format, never as a
cut connection: Ollama's NDJSON ends with an ``{"error": …}`` line, OpenAI's SSE with an
``error`` event (which the official client raises). Errors before the stream are answered in
the shape of the API asked (the OpenAI API is its own sub-application), and no internal
exception text or store path reaches a client.

The mid-stream failures are real: the model's worker process is killed with SIGKILL while it
streams. The internal error is a runner factory that fails as a bug would (a plain
``RuntimeError`` midway), injected as the scheduler's factory, as the house style has it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
from serving import Served
from starlette.testclient import TestClient

from mdl.builder.build import build_model
from mdl.runtime.app import create_app
from mdl.runtime.config import ServeConfig
from mdl.runtime.library import Library
from mdl.runtime.models import ModelResolver
from mdl.runtime.runner import (
    CompletionRequest,
    Embeddings,
    Failed,
    LoadSpec,
    ModelFacts,
    RunnerEvent,
    Token,
)
from mdl.runtime.scheduler import Scheduler
from mdl.runtime.service import Service
from mdl.spec.modelfile import parse_modelfile
from mdl.spec.reference import Reference
from mdl.store.store import Store

LONG = {"temperature": 0, "num_ctx": 16384, "num_predict": 15000}
SECRET = "secret detail at /srv/internal/state.db"
INTERNAL = "internal error (the server log has the details)"


@contextmanager
def post(served: Served, path: str, body: dict[str, object]) -> Iterator[http.client.HTTPResponse]:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        yield response
    finally:
        connection.close()


def test_ollama_stream_ends_with_an_error_line_when_the_worker_dies(served: Served) -> None:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "options": LONG}
    with post(served, "/api/chat", body) as response:
        first = json.loads(response.readline())
        assert first["done"] is False
        served.kill_worker("tiny:latest")
        rest = response.read()  # a cut connection would raise IncompleteRead here
    lines = [json.loads(line) for line in rest.splitlines() if line.strip()]
    assert lines and set(lines[-1]) == {"error"}, lines[-3:]
    assert "SIGKILL" in lines[-1]["error"] and "tiny:latest" in lines[-1]["error"]
    assert str(served.home) not in rest.decode()
    assert all(not line.get("done") for line in lines[:-1])


def test_openai_stream_ends_with_an_error_event_when_the_worker_dies(served: Served) -> None:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "max_tokens": 15000,
        "temperature": 0,
    }
    with post(served, "/v1/chat/completions", body) as response:
        assert response.readline().startswith(b"data: ")
        served.kill_worker("tiny:latest")
        events = response.read().decode().strip().split("\n\n")  # complete, or IncompleteRead
    assert events[-1].startswith("event: error\ndata: "), events[-2:]
    error = json.loads(events[-1].split("data: ", 1)[1])["error"]
    assert error["type"] == "api_error" and "SIGKILL" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "[DONE]" not in events[-1]


def test_the_openai_client_raises_the_mid_stream_error(served: Served) -> None:
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    stream = client.completions.create(
        model="tiny", prompt="hi", stream=True, max_tokens=15000, temperature=0
    )
    with stream, pytest.raises(openai.APIError) as caught:
        for index, _ in enumerate(stream):
            if index == 0:
                served.kill_worker("tiny:latest")
    assert "SIGKILL" in caught.value.message


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "kind"),
    [
        ("POST", "/v1/chat/completions", b"{not json", 400, "invalid_request_error"),
        ("POST", "/v1/chat/completions", b'{"model": "tiny"}', 400, "invalid_request_error"),
        ("POST", "/v1/embeddings", b'{"model": "nosuch", "input": "x"}', 404, "not_found_error"),
        ("POST", "/v1/nowhere", b"{}", 404, "not_found_error"),
        ("DELETE", "/v1/models", b"", 405, "api_error"),
        ("GET", "/v1/models/nosuch", b"", 404, "not_found_error"),
    ],
)  # fmt: skip
def test_the_openai_sub_app_answers_bad_input_in_its_shape(
    served: Served, method: str, path: str, body: bytes, status: int, kind: str
) -> None:
    got, answer = served.request(method, path, body or None)
    assert got == status, answer
    assert set(answer) == {"error"} and set(answer["error"]) == {"message", "type", "param", "code"}
    assert answer["error"]["type"] == kind and answer["error"]["message"]


def test_the_browser_guard_answers_each_api_in_its_shape(served: Served) -> None:
    for path, shape in (("/v1/models", dict), ("/api/tags", str)):
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        try:
            connection.request("GET", path, headers={"Origin": "https://evil.example"})
            response = connection.getresponse()
            answer = json.loads(response.read())
        finally:
            connection.close()
        assert response.status == 403 and isinstance(answer["error"], shape), (path, answer)


def test_ollama_errors_stay_in_ollama_shape(served: Served) -> None:
    for path in ("/api/nowhere", "/v1"):  # /v1 itself is no OpenAI endpoint
        status, answer = served.request("POST", path, {})
        assert status in (404, 405) and isinstance(answer["error"], str), (path, answer)


def test_a_broken_model_names_no_store_path(served: Served) -> None:
    served.forge("broken", "tiny", "model.gguf", b"GGUF but not really")
    for path, body in (
        ("/api/generate", {"model": "broken", "prompt": "hi"}),
        ("/v1/completions", {"model": "broken", "prompt": "hi"}),
    ):
        status, answer = served.request("POST", path, body)
        text = json.dumps(answer)
        assert status == 500 and "broken" in text, answer
        assert str(served.home) not in text and str(served.home.resolve()) not in text


class Faulty:
    """A runner that fails as a bug would: a plain exception (with internal detail) after one
    token, or before any."""

    def __init__(self, tokens: int) -> None:
        self.facts = ModelFacts(n_ctx=512, bos_token="", eos_token="")
        self.tokens = tokens
        self.closed = asyncio.Event()

    async def complete(self, request: CompletionRequest) -> AsyncGenerator[RunnerEvent, None]:
        for _ in range(self.tokens):
            yield Token("a")
        raise RuntimeError(SECRET)

    async def embed(self, texts: Sequence[str], truncate: bool) -> Embeddings | Failed:
        raise RuntimeError(SECRET)

    async def wait_exited(self) -> None:
        await self.closed.wait()

    async def close(self) -> None:
        self.closed.set()


@pytest.fixture(params=[1, 0], ids=["midway", "at-once"])
def faulty(
    request: pytest.FixtureRequest, tmp_path: Path, models_dir: Path
) -> Iterator[tuple[TestClient, int]]:
    """An in-process app over a store with ``tiny``, whose runner fails after 1 or 0 tokens."""
    store = Store(tmp_path / "store")
    build_model(store, parse_modelfile("FROM ./tiny.gguf\n"), models_dir, [Reference.parse("tiny")])

    async def factory(spec: LoadSpec) -> Faulty:
        return Faulty(request.param)

    service = Service(ModelResolver(store), Scheduler(factory))
    app = create_app(service, Library(store), ServeConfig.from_env({}))
    http = TestClient(app, base_url="http://localhost:11434", raise_server_exceptions=False)
    with http as client:
        yield client, request.param


def test_internal_errors_tell_clients_nothing_but_the_log_everything(
    faulty: tuple[TestClient, int], caplog: pytest.LogCaptureFixture
) -> None:
    client, tokens = faulty
    caplog.set_level(logging.ERROR, "mdl.runtime")
    answers = []
    for path, body in (
        ("/api/generate", {"model": "tiny", "prompt": "hi"}),
        ("/v1/completions", {"model": "tiny", "prompt": "hi", "stream": True}),
    ):
        with client.stream("POST", path, json=body) as response:
            answers.append((response.status_code, response.read().decode()))
    embedded = client.post("/api/embed", json={"model": "tiny", "input": "x"})
    assert embedded.status_code == 500 and embedded.json() == {"error": INTERNAL}
    if tokens:
        (ndjson_status, ndjson), (sse_status, sse) = answers
        assert ndjson_status == sse_status == 200
        assert json.loads(ndjson.splitlines()[-1]) == {"error": INTERNAL}
        event = sse.strip().split("\n\n")[-1]
        assert event.startswith("event: error\n") and json.loads(event.split("data: ")[1]) == {
            "error": {"message": INTERNAL, "type": "api_error", "param": None, "code": None}
        }
    else:
        assert [s for s, _ in answers] == [500, 500]
        assert json.loads(answers[0][1]) == {"error": INTERNAL}
        assert json.loads(answers[1][1])["error"]["message"] == INTERNAL
    assert all(SECRET not in text for _, text in answers)
    assert SECRET in caplog.text  # the log has the details
