"""Parallel sequences in one model (``MDL_NUM_PARALLEL=4``) through the real ``ollama`` and
``openai`` clients: concurrent streams, per-request options, cancellation, embeddings beside
generation, and a worker crash with several requests in flight."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from serving import TOOL_CALL_SCHEMA, Served, running, sequences, standard_models, wait_for

PARALLEL = 4
TOPICS = ("cats", "dogs", "the sea", "rain", "stars", "ice", "fire", "bread")
DEADLINE = 60.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("parallel"), {"MDL_NUM_PARALLEL": str(PARALLEL)})
    standard_models(server, models_dir)
    yield from running(server)


@pytest.fixture(scope="module")
def native(served: Served) -> Iterator[ollama.Client]:
    with ollama.Client(host=served.url) as client:
        yield client


@pytest.fixture(scope="module")
def oai(served: Served) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def messages(topic: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"tell me about {topic}"}]


def test_eight_concurrent_streaming_chats_complete_each_as_it_would_alone(
    native: ollama.Client, oai: openai.OpenAI, served: Served
) -> None:
    options = {"temperature": 0, "num_predict": 24}
    alone = [
        native.chat(model="tiny", messages=messages(t), options=options).message.content
        for t in TOPICS
    ]
    first_chunks = threading.Barrier(PARALLEL + 1, timeout=DEADLINE)

    def with_ollama(i: int) -> tuple[str, Any]:
        chat = messages(TOPICS[i])
        stream = native.chat(model="tiny", messages=chat, options=options, stream=True)
        text, last = "", None
        for n, chunk in enumerate(stream):
            text += chunk.message.content or ""
            last = chunk
            if n == 0:
                first_chunks.wait()  # all four have begun before the next four come
        return text, last

    def with_openai(i: int) -> tuple[str, Any]:
        stream = oai.chat.completions.create(
            model="tiny", messages=messages(TOPICS[i]), temperature=0, max_tokens=24,  # type: ignore[arg-type]
            stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        text, finish, usage = "", None, None
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            usage = chunk.usage or usage
        return text, (finish, usage)

    with ThreadPoolExecutor(len(TOPICS)) as pool:
        natives = [pool.submit(with_ollama, i) for i in range(PARALLEL)]
        first_chunks.wait()
        openais = [pool.submit(with_openai, i) for i in range(PARALLEL, len(TOPICS))]
        results = [f.result(DEADLINE) for f in natives + openais]

    for i, (text, last) in enumerate(results[:PARALLEL]):
        assert last.done and last.done_reason == "length" and last.eval_count == 24
        assert last.prompt_eval_count > 0 and last.eval_duration > 0
        assert text == alone[i]
    for i, (text, (finish, usage)) in enumerate(results[PARALLEL:], PARALLEL):
        assert finish == "length" and usage.completion_tokens == 24
        assert text == alone[i]
    wait_for(lambda: sequences(served)["busy"] == 0, "the sequences to be free")


def test_ps_counts_the_busy_sequences(served: Served) -> None:
    """Four clients reading long answers (context shifts keep them going) hold all four
    sequences; once they leave, every sequence is free again."""
    body = {"model": "tiny", "prompt": "hello", "raw": True, "options": {"num_predict": 30000}}
    reading = threading.Barrier(PARALLEL + 1, timeout=DEADLINE)
    leave = threading.Event()

    def client() -> None:
        with (
            httpx.Client(base_url=served.url, timeout=DEADLINE) as http,
            http.stream("POST", "/api/generate", json=body) as response,
        ):
            for n, line in enumerate(response.iter_lines()):
                assert '"done":false' in line
                if n == 0:
                    reading.wait()
                if leave.is_set():
                    return

    threads = [threading.Thread(target=client) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    try:
        reading.wait()
        assert sequences(served) == {"busy": PARALLEL, "total": PARALLEL, "queued": 0}
    finally:
        leave.set()
        for thread in threads:
            thread.join(DEADLINE)
    wait_for(lambda: sequences(served)["busy"] == 0, "the sequences to be free")


def test_each_concurrent_request_keeps_its_own_options(native: ollama.Client) -> None:
    prompt = "once upon a time"
    base = {"temperature": 0, "num_predict": 40}
    free = native.generate(model="tiny", prompt=prompt, options=base).response
    stop = free[12:15]
    assert stop
    cut = free[: free.find(stop)]
    started = threading.Barrier(3, timeout=DEADLINE)

    def run(options: dict[str, Any], fmt: Any = None) -> Any:
        started.wait()
        return native.generate(model="tiny", prompt=prompt, options=options, format=fmt)

    with ThreadPoolExecutor(3) as pool:
        stopped = pool.submit(run, {**base, "stop": [stop]})
        short = pool.submit(run, {**base, "num_predict": 5})
        shaped = pool.submit(run, {**base, "num_predict": 200}, TOOL_CALL_SCHEMA)
        stopped_answer, short_answer, shaped_answer = (
            f.result(DEADLINE) for f in (stopped, short, shaped)
        )
    assert stopped_answer.done_reason == "stop" and stopped_answer.response == cut
    assert short_answer.done_reason == "length" and short_answer.eval_count == 5
    assert (
        short_answer.response
        == native.generate(model="tiny", prompt=prompt, options={**base, "num_predict": 5}).response
    )
    call = json.loads(shaped_answer.response)
    assert call["name"] == "get_weather" and call["arguments"]["city"] in ("Paris", "Rome")


def test_a_seed_gives_the_same_sample_beside_other_requests(native: ollama.Client) -> None:
    sampled = {"temperature": 1.0, "seed": 42, "num_predict": 16, "top_k": 0, "top_p": 1.0}
    alone = native.generate(model="tiny", prompt="hello", options=sampled).response
    other_seed = native.generate(
        model="tiny", prompt="hello", options={**sampled, "seed": 43}
    ).response
    with ThreadPoolExecutor(3) as pool:
        answers = list(
            pool.map(
                lambda o: native.generate(model="tiny", prompt="hello", options=o).response,
                [sampled, {**sampled, "seed": 43}, {"temperature": 0, "num_predict": 30}],
            )
        )
    assert answers[0] == alone and answers[1] == other_seed and alone != other_seed


def test_the_next_turn_of_a_chat_evaluates_only_its_new_tokens(native: ollama.Client) -> None:
    """Three other conversations run in between; the chat keeps its own sequence's cache."""
    options = {"temperature": 0, "num_predict": 10, "num_ctx": 2048}
    system = {"role": "system", "content": "you are a patient guide. " * 16}
    chat = [system, {"role": "user", "content": "where is the old lighthouse?"}]
    first = native.chat(model="tiny", messages=chat, options=options)
    for topic in TOPICS[:3]:
        native.chat(model="tiny", messages=messages(topic), options=options)
    chat += [
        {"role": "assistant", "content": first.message.content},
        {"role": "user", "content": "and then?"},
    ]
    second = native.chat(model="tiny", messages=chat, options=options)
    assert first.prompt_eval_count > 400
    assert 0 < second.prompt_eval_count < 50


def test_embeddings_answer_while_streams_run(native: ollama.Client, served: Served) -> None:
    expected = native.embed(model="tiny", input="hello").embeddings
    stream = native.generate(
        model="tiny", prompt="hi", options={"num_predict": 2000, "num_ctx": 4096}, stream=True
    )
    assert next(stream).response is not None
    during = native.embed(model="tiny", input="hello").embeddings
    assert during == expected
    stream.close()  # type: ignore[attr-defined]


def test_a_crash_fails_every_request_in_flight_and_the_next_one_reloads(
    native: ollama.Client, served: Served
) -> None:
    long = {"num_predict": 20000, "num_ctx": 2048}
    native.generate(model="tiny-b", prompt="", options={"num_ctx": 2048})
    streams = [
        native.generate(model="tiny-b", prompt=t, options=long, stream=True) for t in TOPICS[:3]
    ]
    for stream in streams:
        assert next(stream).response is not None
    wait_for(lambda: sequences(served, "tiny-b:latest")["busy"] == 3, "three busy sequences")
    killed = served.kill_worker("tiny-b:latest")
    for stream in streams:
        with pytest.raises(ollama.ResponseError) as caught:
            for _ in stream:
                pass
        assert "SIGKILL" in caught.value.error and "tiny-b:latest" in caught.value.error
    again = native.generate(model="tiny-b", prompt="hi", options={**long, "num_predict": 4})
    assert again.done and again.eval_count == 4
    assert served.workers()["tiny-b:latest"] != killed
