"""A worker killed mid-generation fails only its own request; the server and the other models
keep serving, and the next request to the killed model loads it again; a request the worker died
before answering runs again on a fresh one."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest
from ggufs import gguf_bytes, gguf_string
from serving import Served, wait_for

LONG = {"temperature": 0, "num_ctx": 16384, "num_predict": 15000}


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[ollama.Client]:
    with ollama.Client(host=served.url) as client:
        yield client


def test_kill_9_fails_only_that_models_request(client: ollama.Client, served: Served) -> None:
    client.generate(model="tiny-b", prompt="")  # load the bystander
    stream = client.generate(model="tiny", prompt="hello", options=LONG, stream=True)
    first = next(stream)
    assert first.response
    killed = served.kill_worker("tiny:latest")

    bystander: list[str] = []
    worker = threading.Thread(
        target=lambda: bystander.append(
            client.generate(model="tiny-b", prompt="cat", options={"num_predict": 8}).response
        )
    )
    worker.start()
    with pytest.raises(ollama.ResponseError) as caught:
        for _ in stream:
            pass
    worker.join(30)
    assert "SIGKILL" in caught.value.error and "tiny:latest" in caught.value.error
    assert bystander and bystander[0]

    again = client.generate(model="tiny", prompt="hello", options={"num_predict": 4})
    assert again.done and again.eval_count == 4
    assert served.workers()["tiny:latest"] != killed
    assert "tiny-b:latest" in served.ps()


def test_a_crash_before_the_first_token_is_a_clean_error(
    client: ollama.Client, served: Served
) -> None:
    client.generate(model="tiny-go", prompt="")
    killed = served.kill_worker("tiny-go:latest")
    # at once: the server may not have seen it die, then the request finds it gone and reloads
    answer = client.generate(model="tiny-go", prompt="hello", options={"num_predict": 3})
    assert answer.eval_count == 3
    assert served.workers()["tiny-go:latest"] != killed


def unread_bytes(pid: int) -> int:
    """Bytes waiting in the sockets of process ``pid`` that it has not read (ss's Recv-Q)."""
    table = subprocess.run(["ss", "-xpnH"], capture_output=True, text=True, check=True).stdout
    return sum(int(row.split()[2]) for row in table.splitlines() if f"pid={pid}," in row)


def test_a_request_sent_to_a_worker_that_dies_unread_is_answered_by_a_fresh_one(
    client: ollama.Client, served: Served
) -> None:
    client.generate(model="tiny-go", prompt="")
    pid = served.workers()["tiny-go:latest"]
    os.kill(pid, signal.SIGSTOP)  # alive to the server, but it reads nothing
    answers: list[ollama.GenerateResponse] = []
    asking = threading.Thread(
        target=lambda: answers.append(
            client.generate(model="tiny-go", prompt="hello", options={"num_predict": 3})
        )
    )
    asking.start()
    wait_for(lambda: unread_bytes(pid) > 0, "the request to sit unread in the worker's socket")
    os.kill(pid, signal.SIGKILL)
    asking.join(60)
    assert answers and answers[0].eval_count == 3
    assert served.workers()["tiny-go:latest"] != pid


def test_a_model_that_fails_to_load_leaves_the_others_serving(
    client: ollama.Client, served: Served
) -> None:
    header_only = gguf_bytes([("general.architecture", 8, gguf_string("llama"))])
    served.forge("hollow", "tiny", "model.gguf", header_only)
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="hollow", prompt="hi")
    assert caught.value.status_code == 500
    assert "hollow:latest" in caught.value.error and "load" in caught.value.error
    assert client.generate(model="tiny-b", prompt="hi", options={"num_predict": 2}).done
    assert "hollow:latest" not in served.ps()


def test_an_adapter_for_another_architecture_is_refused_before_loading(
    client: ollama.Client, served: Served, models_dir: Path
) -> None:
    """llama.cpp would crash on it; the runtime checks the adapter's header first."""
    other = (models_dir / "qwen-lora.gguf").read_bytes()
    served.forge("mismatch", "tiny", "adapters/qwen.gguf", other)
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="mismatch", prompt="hi")
    assert caught.value.status_code == 500
    assert "qwen2" in caught.value.error and "llama" in caught.value.error
    assert "mismatch:latest" not in served.workers()
