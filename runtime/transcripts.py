"""A finished transcription in OpenAI's response formats. Pure.

``json`` ``{"text"}``; ``text``; ``srt`` and ``vtt`` subtitles; ``verbose_json`` with the task,
language, duration and segments (OpenAI's segment fields; ``no_speech_prob`` is 0 and
``compression_ratio`` is computed here, since the binding reports neither). Streams use OpenAI's
``transcript.text.delta`` / ``transcript.text.done`` events, one delta per segment.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mdl.runtime.speech import Segment
from mdl.spec.whisper_ggml import LANGUAGES, NAMES

FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


@dataclass(frozen=True)
class Transcript:
    task: str
    """``transcribe`` or ``translate``."""
    language: str
    duration: float
    segments: tuple[Segment, ...]
    temperature: float

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()


def render(transcript: Transcript, response_format: str) -> tuple[str | dict[str, Any], str]:
    """The body (text, or a JSON object) and its media type."""
    if response_format == "text":
        return transcript.text + "\n", "text/plain"
    if response_format == "srt":
        return subtitles(transcript.segments, ",", False), "text/plain"
    if response_format == "vtt":
        return subtitles(transcript.segments, ".", True), "text/vtt"
    body: dict[str, Any] = {"text": transcript.text}
    if response_format == "verbose_json":
        body = {
            "task": transcript.task,
            "language": language_name(transcript.language),
            "duration": round(transcript.duration, 2),
            "text": transcript.text,
            "segments": [_segment(s, transcript.temperature) for s in transcript.segments],
        }
    body["usage"] = usage(transcript.duration)
    return body, "application/json"


def usage(duration: float) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(duration)}


def delta_event(segment: Segment) -> dict[str, Any]:
    return {"type": "transcript.text.delta", "delta": segment.text}


def done_event(transcript: Transcript) -> dict[str, Any]:
    return {
        "type": "transcript.text.done",
        "text": transcript.text,
        "usage": usage(transcript.duration),
    }


def subtitles(segments: Sequence[Segment], comma: str, vtt: bool) -> str:
    """SRT (numbered cues, ``00:00:01,500``) or WebVTT (a header, ``00:00:01.500``)."""
    cues = []
    for number, s in enumerate(segments, 1):
        times = f"{timestamp(s.start, comma)} --> {timestamp(s.end, comma)}"
        cue = f"{times}\n{s.text.strip()}\n"
        cues.append(cue if vtt else f"{number}\n{cue}")
    return ("WEBVTT\n\n" if vtt else "") + "\n".join(cues)


def timestamp(seconds: float, comma: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{comma}{millis:03d}"


def language_name(code: str) -> str:
    return NAMES[LANGUAGES.index(code)] if code in LANGUAGES else code


def _segment(s: Segment, temperature: float) -> dict[str, Any]:
    encoded = s.text.encode()
    ratio = len(encoded) / len(zlib.compress(encoded)) if encoded else 0.0
    return {
        "id": s.id,
        "seek": int(s.start // 30) * 3000,  # the 30 s window, in mel frames (100 per second)
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "tokens": list(s.tokens),
        "temperature": temperature,
        "avg_logprob": s.avg_logprob,
        "compression_ratio": round(ratio, 3),
        "no_speech_prob": 0.0,
    }
