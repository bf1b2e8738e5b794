"""Hot-swap with ``MDL_MAX_LOADED_MODELS=1``: eviction, re-tags while serving, keep-alive,
the bounded queue, and a client that disconnects mid-stream; one sequence per model
(``MDL_NUM_PARALLEL=1``), so a second request queues behind the first."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from serving import Served, running, sequences, standard_models, wait_for

LONG = {"num_ctx": 32768, "num_predict": 30000}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Served]:
    env = {
        "MDL_MAX_LOADED_MODELS": "1",
        "MDL_MAX_QUEUE": "1",
        "MDL_KEEP_ALIVE": "5m",
        "MDL_NUM_PARALLEL": "1",
    }
    server = Served(tmp_path_factory.mktemp("swap-home"), env)
    standard_models(server, models_dir)
    yield from running(server)


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[ollama.Client]:
    with ollama.Client(host=served.url) as client:
        yield client


def answer(client: ollama.Client, model: str, **options: object) -> str:
    options = {"num_predict": 8, "temperature": 0, **options}
    return client.generate(model=model, prompt="hello", options=options).response or ""


def test_one_model_at_a_time_the_other_is_evicted(client: ollama.Client, served: Served) -> None:
    for model in ("tiny", "tiny-b", "tiny", "tiny-b"):
        answer(client, model)
        assert served.ps() == [f"{model}:latest"]
        assert list(served.workers()) == [f"{model}:latest"]


def test_retag_serves_the_new_digest_on_the_next_request(
    client: ollama.Client, served: Served, models_dir: Path
) -> None:
    first = served.build("swap", "FROM ./tiny.gguf\n", models_dir)
    before = answer(client, "swap")
    assert client.ps().models[0].digest == first.removeprefix("sha256:")

    second = served.build("swap", "FROM ./tiny-b.gguf\n", models_dir)
    after = answer(client, "swap")
    assert after != before and after == answer(client, "tiny-b")
    answer(client, "swap")
    assert client.ps().models[0].digest == second.removeprefix("sha256:")


def test_retag_lets_the_running_answer_finish(
    client: ollama.Client, served: Served, models_dir: Path
) -> None:
    served.build("drain", "FROM ./tiny.gguf\n", models_dir)
    answer(client, "drain")
    options = {"num_predict": 400, "num_ctx": 1024}
    stream = client.generate(model="drain", prompt="hello", options=options, stream=True)
    assert next(stream).response
    served.build("drain", "FROM ./tiny-b.gguf\n", models_dir)
    newer: list[str] = []
    thread = threading.Thread(target=lambda: newer.append(answer(client, "drain")))
    thread.start()
    chunks = list(stream)
    thread.join(60)
    assert chunks[-1].done_reason == "length" and chunks[-1].eval_count == 400
    assert newer == [answer(client, "tiny-b")]


def test_keep_alive_zero_unloads_after_the_answer(client: ollama.Client, served: Served) -> None:
    client.generate(model="tiny", prompt="hi", options={"num_predict": 2}, keep_alive=0)
    assert served.ps() == []
    deadline = time.monotonic() + 10
    while served.workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.workers() == {}


def test_keep_alive_expires(client: ollama.Client, served: Served) -> None:
    client.generate(model="tiny", prompt="hi", options={"num_predict": 2}, keep_alive="1s")
    assert served.ps() == ["tiny:latest"]
    deadline = time.monotonic() + 10
    while served.ps() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served.ps() == []


def test_negative_keep_alive_keeps_forever(client: ollama.Client, served: Served) -> None:
    client.generate(model="tiny", prompt="", keep_alive=-1)
    (model,) = client.ps().models
    assert model.expires_at and model.expires_at.year > 2100


def test_a_full_queue_answers_503(client: ollama.Client, served: Served) -> None:
    running = client.generate(model="tiny", prompt="hi", options=LONG, stream=True)
    next(running)
    queued: list[str] = []
    same_runner = {"num_ctx": LONG["num_ctx"]}
    thread = threading.Thread(target=lambda: queued.append(answer(client, "tiny", **same_runner)))
    thread.start()
    wait_for(lambda: sequences(served)["queued"] == 1, "it to queue (MDL_MAX_QUEUE=1)")
    status, body = served.request(
        "POST", "/api/generate", {"model": "tiny", "prompt": "x", "options": LONG}
    )
    assert status == 503 and "busy" in body["error"]
    running.close()  # type: ignore[attr-defined]
    thread.join(30)
    assert queued and queued[0]


def test_a_disconnected_client_stops_the_generation(served: Served) -> None:
    body = {"model": "tiny", "prompt": "hello", "options": LONG}
    with (
        httpx.Client(base_url=served.url, timeout=30) as http,
        http.stream("POST", "/api/generate", json=body) as response,
    ):
        assert next(response.iter_lines())
    started = time.monotonic()
    status, quick = served.request(
        "POST", "/api/generate",
        {"model": "tiny", "prompt": "hi", "stream": False, "options": {"num_predict": 2}},
    )  # fmt: skip
    assert status == 200 and quick["eval_count"] == 2
    assert time.monotonic() - started < 10  # the 30000-token answer (a minute) did not run on
