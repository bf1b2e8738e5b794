"""The pure parts of speech to text: segment times, response formats, channel messages."""

from __future__ import annotations

import pytest

from mdl.runtime import speech
from mdl.runtime.runner import Failed
from mdl.runtime.speech import Segment, Transcribed, TranscribeRequest, clamp
from mdl.runtime.transcripts import Transcript, language_name, render, subtitles, timestamp

SEGMENTS = (Segment(0, 0.0, 1.5, " Hello", (1, 2), -0.5), Segment(1, 1.5, 3661.25, " world."))


@pytest.mark.parametrize(
    ("t0", "t1", "start", "end"),
    [(0, 150, 0.0, 1.5), (-100726, 300, 0.0, 3.0), (900, 812, 4.0, 4.0), (200, 9999, 2.0, 4.0)],
)
def test_clamp_keeps_segments_inside_the_audio(t0: int, t1: int, start: float, end: float) -> None:
    segment = clamp(3, t0, t1, 4.0, " x")
    assert (segment.start, segment.end) == (start, end)


def test_timestamps_in_srt_and_vtt() -> None:
    assert timestamp(3661.25, ",") == "01:01:01,250" and timestamp(59.9996, ".") == "00:01:00.000"
    assert subtitles(SEGMENTS, ",", False) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello\n\n2\n00:00:01,500 --> 01:01:01,250\nworld.\n"
    )
    assert subtitles(SEGMENTS, ".", True).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n")


def test_render_every_format() -> None:
    transcript = Transcript("transcribe", "de", 3661.3, SEGMENTS, 0.0)
    assert render(transcript, "text") == ("Hello world.\n", "text/plain")
    body, media_type = render(transcript, "json")
    assert body == {"text": "Hello world.", "usage": {"type": "duration", "seconds": 3662}}
    verbose, _ = render(transcript, "verbose_json")
    assert isinstance(verbose, dict) and media_type == "application/json"
    assert verbose["language"] == "german" and verbose["duration"] == 3661.3
    first = verbose["segments"][0]
    assert first["tokens"] == [1, 2] and first["avg_logprob"] == -0.5 and first["seek"] == 0
    assert verbose["segments"][1]["seek"] == 0
    assert language_name("yue") == "cantonese" and language_name("xx") == "xx"


def test_channel_messages_round_trip() -> None:
    request = TranscribeRequest("/tmp/s.f32", 2.5, "en", "names", 0.2, True)
    assert speech.transcribe_request(speech.transcribe_message(request)) == request
    for event in (SEGMENTS[0], Transcribed("en", 7), Failed("bad", bad_request=True)):
        assert speech.event(speech.event_message(event)) == event
    with pytest.raises(ValueError, match="unknown whisper worker event"):
        speech.event({"ev": "token"})
