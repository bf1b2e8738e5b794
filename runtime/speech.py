"""Speech-to-text values: a transcription request, the segments it yields, their channel
messages, and the refusal the text endpoints give a speech model. Pure.

Server to a whisper worker: ``load``, ``transcribe``, ``cancel``, ``exit`` (key ``op``); the
worker answers ``loaded``, then per request ``segment``… and one ``transcribed`` or ``failed``
(key ``ev``). The audio itself never crosses the channel: the server decodes it to 16 kHz mono
float32 samples in a file, and the request names that file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mdl.runtime.errors import BadRequest
from mdl.runtime.models import ResolvedModel
from mdl.runtime.runner import Failed

SAMPLE_RATE = 16_000
Message = dict[str, Any]


@dataclass(frozen=True)
class TranscribeRequest:
    samples: str
    """The file of float32 samples at 16 kHz."""
    duration: float
    language: str | None = None
    """An ISO 639-1 code; None: the model detects it (English-only models: English)."""
    prompt: str = ""
    temperature: float | None = None
    """None: whisper.cpp's schedule (0, then up by 0.2 while a window fails its checks)."""
    translate: bool = False


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    avg_logprob: float = 0.0


@dataclass(frozen=True)
class Transcribed:
    language: str
    decode_ns: int = 0


SpeechEvent = Segment | Transcribed | Failed


def refuse_speech(model: ResolvedModel) -> None:
    """For the text endpoints: a speech model is a 400 that says where to go instead."""
    if model.speech:
        raise BadRequest(
            f"{model.name} is a speech-to-text model (capabilities: transcription); "
            "send audio to /v1/audio/transcriptions or /v1/audio/translations"
        )


def clamp(seg_id: int, t0: int, t1: int, duration: float, text: str) -> Segment:
    """A segment from whisper.cpp's centisecond times, kept inside the audio (the last
    window's times can run past its end)."""
    start = min(max(t0 / 100, 0.0), duration)
    end = min(max(t1 / 100, start), duration)
    return Segment(seg_id, round(start, 2), round(end, 2), text)


def transcribe_message(request: TranscribeRequest) -> Message:
    return {"op": "transcribe", "request": asdict(request)}


def transcribe_request(message: Message) -> TranscribeRequest:
    return TranscribeRequest(**message["request"])


def event_message(event: SpeechEvent) -> Message:
    kind = {Segment: "segment", Transcribed: "transcribed", Failed: "failed"}
    return {"ev": kind[type(event)], **asdict(event)}


def event(message: Message) -> SpeechEvent:
    fields = {k: v for k, v in message.items() if k != "ev"}
    kind = message.get("ev")
    if kind == "segment":
        return Segment(**{**fields, "tokens": tuple(fields["tokens"])})
    if kind == "transcribed":
        return Transcribed(**fields)
    if kind == "failed":
        return Failed(**fields)
    raise ValueError(f"unknown whisper worker event {kind!r}")
