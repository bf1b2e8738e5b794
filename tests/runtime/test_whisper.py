"""Speech to text through ``mdl serve``: a tiny random whisper.cpp model, built, pushed to
mdl's registry, pulled into the server's store, and driven through the official ``openai``
client with WAVs that Debian's espeak-ng speaks. A random model's words mean nothing: the
tests check shapes, segments, timestamps and that the audio's length is respected."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import warnings
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from ggufs import write_tiny_llama
from servers import start_mdl_registry
from serving import Served, running, speak
from whisper_models import write_tiny_whisper

SENTENCE = "Hello world. This is a short test of speech to text, spoken by a machine."
MAX_REQUEST_BYTES = 4 << 20


def _mdl(home: Path, *args: str) -> None:
    env = {**os.environ, "MDL_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "mdl.cli", *args], env=env, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak(tmp_path_factory.mktemp("audio") / "speech.wav", SENTENCE)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    context = tmp_path_factory.mktemp("models")
    write_tiny_whisper(context / "ggml-tiny.en.bin")
    write_tiny_whisper(context / "ggml-multi.bin", multilingual=True, seed=1)
    write_tiny_llama(context / "tiny.gguf")
    (context / "Modelfile").write_text("FROM ./ggml-tiny.en.bin\n")
    builder = tmp_path_factory.mktemp("builder-home")
    server = Served(
        tmp_path_factory.mktemp("serve-home"),
        env={"MDL_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)},
    )
    with start_mdl_registry(tmp_path_factory.mktemp("registry")) as registry:
        ref = f"{registry.host}/speech/whisper-tiny:1"
        _mdl(builder, "build", "-q", "-t", ref, "-f", str(context / "Modelfile"))
        _mdl(builder, "push", ref)
        _mdl(server.home, "pull", ref)
        _mdl(server.home, "tag", ref, "whisper-tiny")
    server.build("whisper-multi", "FROM ./ggml-multi.bin\n", context)
    server.build("tiny", "FROM ./tiny.gguf\nPARAMETER temperature 0\n", context)
    yield from running(server)


@pytest.fixture(scope="module")
def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)


def duration_of(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def transcribe(
    client: openai.OpenAI, path: Path, fmt: str, model: str = "whisper-tiny", **extra: object
) -> object:
    with open(path, "rb") as audio:
        return client.audio.transcriptions.create(  # type: ignore[call-overload]
            model=model, file=audio, response_format=fmt, temperature=0, **extra
        )


def cue_times(text: str, comma: str) -> list[tuple[float, float]]:
    stamp = rf"(\d\d):(\d\d):(\d\d){comma}(\d\d\d)"
    found = re.findall(rf"{stamp} --> {stamp}", text)
    assert found, text

    def seconds(h: str, m: str, s: str, ms: str) -> float:
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    return [(seconds(*f[:4]), seconds(*f[4:])) for f in found]


def test_verbose_json_has_segments_inside_the_audio(client: openai.OpenAI, speech: Path) -> None:
    result = transcribe(client, speech, "verbose_json")
    length = duration_of(speech)
    assert result.task == "transcribe" and result.language == "english"  # type: ignore[attr-defined]
    assert result.duration == pytest.approx(length, abs=0.02)  # type: ignore[attr-defined]
    segments = result.segments  # type: ignore[attr-defined]
    assert segments and [s.id for s in segments] == list(range(len(segments)))
    for s in segments:
        assert 0 <= s.start <= s.end <= length + 0.01
        assert s.tokens and all(isinstance(t, int) for t in s.tokens) and s.avg_logprob <= 0
    assert result.text == "".join(s.text for s in segments).strip()  # type: ignore[attr-defined]


def test_json_text_srt_vtt_agree(client: openai.OpenAI, speech: Path) -> None:
    length = duration_of(speech)
    plain = transcribe(client, speech, "json")
    assert plain.text and plain.usage.seconds == math.ceil(length)  # type: ignore[attr-defined]
    text = transcribe(client, speech, "text")
    assert isinstance(text, str) and text.strip() == plain.text  # type: ignore[attr-defined]
    srt = transcribe(client, speech, "srt")
    vtt = transcribe(client, speech, "vtt")
    assert isinstance(srt, str) and isinstance(vtt, str)
    assert srt.startswith("1\n") and vtt.startswith("WEBVTT\n\n")
    srt_times, vtt_times = cue_times(srt, ","), cue_times(vtt, r"\.")
    assert srt_times == vtt_times
    assert all(0 <= a <= b <= length + 0.01 for a, b in srt_times)


def test_stream_sends_a_delta_per_segment_then_done(client: openai.OpenAI, speech: Path) -> None:
    with open(speech, "rb") as audio:
        events = list(
            client.audio.transcriptions.create(
                model="whisper-tiny", file=audio, stream=True, temperature=0
            )
        )
    *deltas, done = events
    assert deltas and all(e.type == "transcript.text.delta" for e in deltas)
    assert done.type == "transcript.text.done"
    assert done.text == "".join(e.delta for e in deltas).strip()  # type: ignore[union-attr]


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (44100, 2)])
def test_wav_at_any_rate_is_resampled(
    client: openai.OpenAI, speech: Path, tmp_path: Path, rate: int, channels: int
) -> None:
    with wave.open(str(speech)) as w:
        source = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
        old_rate = w.getframerate()
    count = int(len(source) * rate / old_rate)
    resampled = np.interp(np.linspace(0, len(source) - 1, count), np.arange(len(source)), source)
    frames = np.repeat(resampled.astype(np.int16)[:, None], channels, axis=1)
    path = tmp_path / f"speech-{rate}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    result = transcribe(client, path, "verbose_json")
    assert result.duration == pytest.approx(duration_of(speech), abs=0.05)  # type: ignore[attr-defined]
    assert result.segments  # type: ignore[attr-defined]


def test_translation_needs_a_multilingual_model(client: openai.OpenAI, speech: Path) -> None:
    # the client marks translations deprecated (OpenAI's newer models do not offer it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with open(speech, "rb") as audio:
            result = client.audio.translations.create(
                model="whisper-multi", file=audio, response_format="verbose_json", temperature=0
            )
        assert result.task == "translate" and result.segments  # type: ignore[attr-defined]
        with (
            open(speech, "rb") as audio,
            pytest.raises(openai.BadRequestError, match="English-only"),
        ):
            client.audio.translations.create(model="whisper-tiny", file=audio)


def test_a_language_the_model_lacks_is_400(client: openai.OpenAI, speech: Path) -> None:
    with open(speech, "rb") as audio, pytest.raises(openai.BadRequestError, match="knows en"):
        client.audio.transcriptions.create(model="whisper-tiny", file=audio, language="fr")
    fr = transcribe(client, speech, "verbose_json", model="whisper-multi", language="fr")
    assert fr.language == "french"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("noise.wav", b"RIFF not really a wave file" * 40),
        ("empty.wav", b""),
        ("x.mp3", b"\0" * 999),
    ],
)
def test_unreadable_audio_is_400(client: openai.OpenAI, name: str, content: bytes) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="whisper-tiny", file=(name, content))
    assert name in caught.value.message
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_request_size_limit_and_form_shape(served: Served, client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(
            model="whisper-tiny", file=("big.wav", b"\0" * (MAX_REQUEST_BYTES + 1))
        )
    assert caught.value.status_code == 413 and "MDL_MAX_REQUEST_BYTES" in caught.value.message
    status, body = served.request("POST", "/v1/audio/transcriptions", {"model": "whisper-tiny"})
    assert status == 415 and "multipart/form-data" in body["error"]["message"]
    with pytest.raises(openai.BadRequestError, match="response_format"):
        client.audio.transcriptions.create(
            model="whisper-tiny",
            file=("a.wav", b"x"),
            response_format="mp3",  # type: ignore[arg-type]
        )


def test_capabilities_and_the_wrong_endpoint(
    served: Served, client: openai.OpenAI, speech: Path
) -> None:
    status, shown = served.request("POST", "/api/show", {"model": "whisper-tiny"})
    assert status == 200 and shown["capabilities"] == ["transcription"]
    assert shown["model_info"]["whisper.languages"] == ["en"]
    assert (
        served.request("POST", "/api/show", {"model": "tiny"})[1]["capabilities"][0] == "completion"
    )
    with pytest.raises(openai.BadRequestError, match=r"speech-to-text model .*transcription"):
        client.chat.completions.create(
            model="whisper-tiny", messages=[{"role": "user", "content": "hi"}]
        )
    status, body = served.request("POST", "/api/embed", {"model": "whisper-tiny", "input": "x"})
    assert status == 400 and "/v1/audio/transcriptions" in body["error"]
    with (
        open(speech, "rb") as audio,
        pytest.raises(
            openai.BadRequestError, match=r"cannot transcribe audio \(capabilities: completion"
        ),
    ):
        client.audio.transcriptions.create(model="tiny", file=audio)


def whisper_workers(served: Served) -> dict[str, int]:
    assert served.process is not None
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == served.process.pid and b"mdl.runtime.whisper_worker" in argv:
            found[argv[-2].decode()] = int(entry.name)
    return found


def test_ps_and_a_killed_whisper_worker_leaves_chat_serving(
    served: Served, client: openai.OpenAI, speech: Path
) -> None:
    transcribe(client, speech, "json")
    chat = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert chat.choices[0].message.content
    status, ps = served.request("GET", "/api/ps")
    assert status == 200
    loaded = {m["name"]: m for m in ps["models"]}
    assert {"whisper-tiny:latest", "tiny:latest"} <= set(loaded)
    assert loaded["whisper-tiny:latest"]["details"]["format"] == "ggml"
    assert loaded["whisper-tiny:latest"]["size"] > 0
    os.kill(whisper_workers(served)["whisper-tiny:latest"], signal.SIGKILL)
    again = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert again.choices[0].message.content == chat.choices[0].message.content
    assert transcribe(client, speech, "json").text  # type: ignore[attr-defined]
    assert "whisper-tiny:latest" in whisper_workers(served)


def test_a_worker_killed_mid_stream_ends_it_with_an_error(
    served: Served, client: openai.OpenAI, speech: Path, tmp_path: Path
) -> None:
    long = tmp_path / "long.wav"
    with wave.open(str(speech)) as w:
        params, frames = w.getparams(), w.readframes(w.getnframes())
    with wave.open(str(long), "wb") as out:
        out.setparams(params)
        out.writeframes(frames * 20)  # several 30 s windows: still decoding after the first
    with open(long, "rb") as audio:
        stream = client.audio.transcriptions.create(
            model="whisper-tiny", file=audio, stream=True, temperature=0
        )
        killed = False
        with pytest.raises(openai.APIError, match="killed by SIGKILL"):
            for event in stream:  # deltas already sent may still arrive after the kill
                if event.type == "transcript.text.delta" and not killed:
                    os.kill(whisper_workers(served)["whisper-tiny:latest"], signal.SIGKILL)
                    killed = True
    chat = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert chat.choices[0].message.content
