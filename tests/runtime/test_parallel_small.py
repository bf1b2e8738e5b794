"""One sequence (``MDL_NUM_PARALLEL=1``): a disconnect frees it for the next request, a
context shift carries a generation past ``num_ctx``, and requests are served one at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import ollama
import pytest
from serving import Served, running, sequences, wait_for

LONG = {"num_predict": 30000, "num_ctx": 32768}
DEADLINE = 60.0


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("parallel-1"), {"MDL_NUM_PARALLEL": "1"})
    server.build("tiny", "FROM ./tiny.gguf\nPARAMETER temperature 0\n", models_dir)
    yield from running(server)


def test_a_disconnect_frees_its_sequence_for_the_next_request(one: Served) -> None:
    """The only sequence runs a 30000-token answer, read by its client; the client leaves,
    the sequence is free again (the answer had minutes to go), and the next request is
    answered."""
    body = {"model": "tiny", "prompt": "hello", "raw": True, "options": LONG}
    reading, leave = threading.Event(), threading.Event()

    def client() -> None:
        with (
            httpx.Client(base_url=one.url, timeout=DEADLINE) as http,
            http.stream("POST", "/api/generate", json=body) as response,
        ):
            for line in response.iter_lines():
                assert '"done":false' in line
                reading.set()
                if leave.is_set():
                    return

    thread = threading.Thread(target=client)
    thread.start()
    try:
        assert reading.wait(DEADLINE)
        assert sequences(one) == {"busy": 1, "total": 1, "queued": 0}
    finally:
        leave.set()
        thread.join(DEADLINE)
    wait_for(lambda: sequences(one)["busy"] == 0, "the sequence to be freed")
    quick = {"model": "tiny", "prompt": "hi", "stream": False,
             "options": {"num_predict": 3, "num_ctx": LONG["num_ctx"]}}  # fmt: skip
    status, answer = one.request("POST", "/api/generate", quick)
    assert status == 200 and answer["eval_count"] == 3


def test_a_context_shift_continues_past_num_ctx(one: Served) -> None:
    with ollama.Client(host=one.url) as client:
        answer = client.generate(
            model="tiny", prompt="hi", options={"num_ctx": 64, "num_predict": 200}
        )
        assert answer.done_reason == "length" and answer.eval_count == 200
        assert answer.prompt_eval_count < 64
        until_full = client.generate(model="tiny", prompt="hi", options={"num_ctx": 64})
        assert until_full.done_reason == "length"
        assert until_full.prompt_eval_count + until_full.eval_count <= 64
        long_prompt = client.generate(
            model="tiny", prompt="word " * 200, options={"num_ctx": 64, "num_predict": 4}
        )
        assert long_prompt.prompt_eval_count <= 48 and long_prompt.eval_count == 4


def test_one_sequence_serves_requests_one_after_another(one: Served) -> None:
    with ollama.Client(host=one.url) as client, ThreadPoolExecutor(3) as pool:
        answers = list(
            pool.map(
                lambda p: client.generate(model="tiny", prompt=p, options={"num_predict": 6}),
                ["a", "b", "c"],
            )
        )
        assert all(a.done and a.eval_count == 6 for a in answers)
        assert sequences(one) == {"busy": 0, "total": 1, "queued": 0}
        alone = [client.generate(model="tiny", prompt=p, options={"num_predict": 6}) for p in "abc"]
    assert [a.response for a in answers] == [a.response for a in alone]
