"""The scheduler treats a whisper runner as any runner: LRU eviction against a chat model,
keep-alive expiry, unload on request (``mdl stop``), /api/ps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from ggufs import write_tiny_llama
from serving import Served, running, speak
from whisper_models import write_tiny_whisper


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak(tmp_path_factory.mktemp("audio") / "hello.wav", "Hello there.")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    context = tmp_path_factory.mktemp("models")
    write_tiny_whisper(context / "ggml-tiny.en.bin")
    write_tiny_llama(context / "tiny.gguf")
    env = {"MDL_MAX_LOADED_MODELS": "1", "MDL_KEEP_ALIVE": "5m"}
    server = Served(tmp_path_factory.mktemp("home"), env)
    server.build("whisper-tiny", "FROM ./ggml-tiny.en.bin\n", context)
    server.build("tiny", "FROM ./tiny.gguf\nPARAMETER temperature 0\n", context)
    yield from running(server)


@pytest.fixture(scope="module")
def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)


def transcribe(client: openai.OpenAI, audio_path: Path, **extra: str) -> str:
    with open(audio_path, "rb") as audio:
        return client.audio.transcriptions.create(
            model="whisper-tiny", file=audio, temperature=0, extra_body=extra
        ).text


def chat(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert reply.choices[0].message.content


def test_one_slot_swaps_speech_and_chat_models(
    served: Served, client: openai.OpenAI, hello: Path
) -> None:
    transcribe(client, hello)
    assert served.ps() == ["whisper-tiny:latest"]
    chat(client)
    assert served.ps() == ["tiny:latest"]
    transcribe(client, hello)
    assert served.ps() == ["whisper-tiny:latest"]


def test_stop_unloads_it(served: Served, client: openai.OpenAI, hello: Path) -> None:
    transcribe(client, hello)
    status, body = served.request(
        "POST", "/api/generate", {"model": "whisper-tiny", "keep_alive": 0}
    )
    assert status == 200 and body["done_reason"] == "unload"
    assert served.ps() == []
    status, body = served.request("POST", "/api/generate", {"model": "whisper-tiny"})
    assert status == 400 and "speech-to-text" in body["error"]
    assert served.ps() == []


def test_keep_alive_expires(served: Served, client: openai.OpenAI, hello: Path) -> None:
    transcribe(client, hello, keep_alive="2s")
    status, body = served.request("GET", "/api/ps")
    assert status == 200 and body["models"][0]["expires_at"] < "2300"
    deadline = time.monotonic() + 15
    while served.ps() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert served.ps() == []
    with pytest.raises(openai.BadRequestError, match="keep_alive"):
        transcribe(client, hello, keep_alive="soon")
