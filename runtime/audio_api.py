"""OpenAI's audio endpoints: ``POST /v1/audio/transcriptions`` and ``/v1/audio/translations``.

A multipart upload: ``file`` and ``model`` (required), ``language``, ``prompt``,
``response_format`` (json, text, srt, verbose_json, vtt), ``temperature``, ``stream``,
``timestamp_granularities[]`` (``segment`` only) and mdl's ``keep_alive`` (as Ollama's). The
body is bounded by MDL_MAX_REQUEST_BYTES like every request; decoding runs in a thread.
Errors are answered in OpenAI's shape by app.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mdl.runtime import audio, offloop, transcripts
from mdl.runtime.errors import BadRequest, WrongContentType
from mdl.runtime.service import Service
from mdl.runtime.speech import Segment
from mdl.runtime.speech_service import SpeechRequest, SpeechService
from mdl.runtime.streaming import StreamResponse, first_item, until_disconnected
from mdl.runtime.transcripts import Transcript
from mdl.spec.errors import MdlError

_TRUE = ("true", "1")


def audio_routes(service: Service) -> list[BaseRoute]:
    speech = SpeechService(service)

    async def transcriptions(request: Request) -> Response:
        return await _handle(speech, request, translate=False)

    async def translations(request: Request) -> Response:
        return await _handle(speech, request, translate=True)

    return [
        Route("/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/audio/translations", translations, methods=["POST"]),
    ]


async def _handle(speech: SpeechService, request: Request, translate: bool) -> Response:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise WrongContentType("send the audio as multipart/form-data (fields file and model)")
    async with request.form(max_files=1, max_fields=32) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("file is required (the audio, as a multipart file field)")
        native = _request(form, translate)
        response_format = _text(form, "response_format") or "json"
        if response_format not in transcripts.FORMATS:
            raise BadRequest(f"response_format must be one of {', '.join(transcripts.FORMATS)}")
        granularities = form.getlist("timestamp_granularities[]")
        if any(g != "segment" for g in granularities):
            raise BadRequest('timestamp_granularities: only "segment" is supported')
        stream = (_text(form, "stream") or "false").lower() in _TRUE
        data = await upload.read()
        name = upload.filename or "file"
    samples = await offloop.blocking(audio.decode, data, name)
    events = speech.transcribe(native, samples)
    if stream:
        first = await first_item(request, events)
        return StreamResponse(_sse(first, events), "text/event-stream")
    transcript = await until_disconnected(request, _last(events))
    body, media_type = transcripts.render(transcript, response_format)
    if isinstance(body, dict):
        return JSONResponse(body)
    return PlainTextResponse(body, media_type=media_type)


def _request(form: FormData, translate: bool) -> SpeechRequest:
    model = _text(form, "model")
    if not model:
        raise BadRequest("model is required")
    raw = _text(form, "temperature")
    try:
        temperature = float(raw) if raw else None
    except ValueError:
        raise BadRequest(f"temperature: {raw!r} is not a number") from None
    if temperature is not None and not 0.0 <= temperature <= 1.0:
        raise BadRequest("temperature must be between 0 and 1")
    return SpeechRequest(
        model=model,
        language=None if translate else (_text(form, "language") or None),
        prompt=_text(form, "prompt"),
        temperature=temperature,
        translate=translate,
        keep_alive=_text(form, "keep_alive") or None,
    )


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a text field")
    return value.strip()


async def _last(events: AsyncGenerator[Segment | Transcript, None]) -> Transcript:
    async with aclosing(events):
        async for event in events:
            if isinstance(event, Transcript):
                return event
    raise BadRequest("the transcription ended without a result")


async def _sse(
    first: Segment | Transcript, events: AsyncGenerator[Segment | Transcript, None]
) -> AsyncGenerator[bytes, None]:
    """Deltas, then done; a failure once streaming has begun (the worker died) is a last
    ``{"error"}`` event, which the openai client raises as an APIError."""
    async with aclosing(events):
        event: Segment | Transcript | None = first
        while event is not None:
            if isinstance(event, Segment):
                yield _event(transcripts.delta_event(event))
            else:
                yield _event(transcripts.done_event(event))
                return
            try:
                event = await anext(events, None)
            except MdlError as exc:
                yield _event({"error": {"message": str(exc), "type": "api_error"}})
                return


def _event(body: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(body)}\n\n".encode()
