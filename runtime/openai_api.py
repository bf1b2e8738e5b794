"""OpenAI's API (``/v1/*``) as a thin adapter over the native service; SSE when streaming.

Request fields map to native options as Ollama's compatibility layer maps them (``max_tokens``
-> ``num_predict``, ``response_format`` -> ``format``, ``stop``, ``seed``, penalties); fields
left out keep the model's defaults. This API is its own sub-application (``app.py``) whose
errors are answered in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``; a
stream that fails midway ends with an ``error`` event carrying the same object.
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
import time
from collections.abc import AsyncGenerator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mdl.runtime.errors import BadRequest, Disclose, ModelMissing
from mdl.runtime.library import Library
from mdl.runtime.messages import message_from_json, tool_from_json
from mdl.runtime.payload import field, read_object, required_str, string_list
from mdl.runtime.runner import Token
from mdl.runtime.service import (
    ChatRequest,
    EmbedRequest,
    Event,
    Finished,
    GenerateRequest,
    Service,
    unit_vector,
)
from mdl.runtime.streaming import Chunk, Framing, answer, compact, until_disconnected

SSE = "text/event-stream"
FINGERPRINT = "fp_mdl"
PREFIX = "/v1"
"""Where ``app.py`` mounts this API; the routes below are relative to it."""
_TYPES = {400: "invalid_request_error", 403: "permission_error", 404: "not_found_error",
          413: "invalid_request_error", 415: "invalid_request_error", 501: "not_implemented",
          503: "service_unavailable"}  # fmt: skip


def error_body(status: int, message: str) -> Chunk:
    """OpenAI's error object, for an answer and for an error in the middle of a stream."""
    kind = _TYPES.get(status, "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _data(chunk: Chunk) -> bytes:
    return b"data: " + compact(chunk) + b"\n\n"


def _error_event(status: int, message: str) -> bytes:
    return b"event: error\n" + _data(error_body(status, message))


FRAMING = Framing(SSE, _data, _error_event, b"data: [DONE]\n\n")


class OpenAIAPI:
    def __init__(self, service: Service, library: Library, disclose: Disclose) -> None:
        self.service = service
        self.library = library
        self.disclose = disclose

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/chat/completions", self.chat, methods=["POST"]),
            Route("/completions", self.completions, methods=["POST"]),
            Route("/embeddings", self.embeddings, methods=["POST"]),
            Route("/models", self.models, methods=["GET"]),
            Route("/models/{model:path}", self.model, methods=["GET"]),
        ]

    async def chat(self, request: Request) -> Response:
        body = await read_object(request)
        tools = field(body, "tools", list, [])
        if body.get("tool_choice") == "none":
            tools = []
        native = ChatRequest(
            model=required_str(body, "model"),
            messages=tuple(message_from_json(m) for m in field(body, "messages", list, [])),
            tools=tuple(tool_from_json(t) for t in tools),
            options=_options(body),
            format=_response_format(body.get("response_format")),
            keep_alive=body.get("keep_alive"),
        )
        if not native.messages:
            raise BadRequest("messages is required")
        reply = _Reply(native.model, "chat.completion", _usage_wanted(body))
        return await self._answer(request, body, self.service.chat(native), reply)

    async def completions(self, request: Request) -> Response:
        body = await read_object(request)
        prompts = string_list(body, "prompt")
        if len(prompts) > 1:
            raise BadRequest("prompt: only one prompt per request is supported")
        native = GenerateRequest(
            model=required_str(body, "model"),
            prompt=prompts[0] if prompts else "",
            suffix=field(body, "suffix", str, ""),
            options=_options(body),
            keep_alive=body.get("keep_alive"),
        )
        if not native.prompt:
            raise BadRequest("prompt is required")
        reply = _Reply(native.model, "text_completion", _usage_wanted(body))
        return await self._answer(request, body, self.service.generate(native), reply)

    async def embeddings(self, request: Request) -> Response:
        body = await read_object(request)
        inputs = body.get("input")
        if isinstance(inputs, list) and inputs and not all(isinstance(i, str) for i in inputs):
            raise BadRequest("input: token arrays are not supported; send text")
        encoding = field(body, "encoding_format", str, "float")
        if encoding not in ("float", "base64"):
            raise BadRequest('encoding_format must be "float" or "base64"')
        native = EmbedRequest(
            model=required_str(body, "model"),
            inputs=tuple(string_list(body, "input")),
            keep_alive=body.get("keep_alive"),
        )
        if not native.inputs:
            raise BadRequest("input is required")
        dimensions = field(body, "dimensions", int, 0)
        result = await until_disconnected(request, self.service.embed(native))
        data = [
            {
                "object": "embedding",
                "embedding": _encode(unit_vector(v, dimensions), encoding),
                "index": i,
            }
            for i, v in enumerate(result.vectors)
        ]
        usage = {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}
        return JSONResponse({"object": "list", "data": data, "model": native.model, "usage": usage})

    async def models(self, request: Request) -> Response:
        listed = await self.library.list()
        data = [_model_json(m.name, m.modified_at.timestamp()) for m in listed]
        return JSONResponse({"object": "list", "data": data})

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        for listed in await self.library.list():
            if name in (listed.name, listed.name.removesuffix(":latest")):
                return JSONResponse(_model_json(listed.name, listed.modified_at.timestamp()))
        raise ModelMissing(f"model '{name}' not found")

    async def _answer(
        self, request: Request, body: dict[str, Any], events: AsyncGenerator[Event, None],
        reply: _Reply,
    ) -> Response:  # fmt: skip
        stream = field(body, "stream", bool, False)
        return await answer(
            request, events, stream, FRAMING, reply.chunks, reply.whole, self.disclose
        )


class _Reply:
    """Renders native events as OpenAI chunks (streaming) and sums them (not streaming)."""

    def __init__(self, model: str, kind: str, usage_wanted: bool) -> None:
        self.model = model
        self.kind = kind
        self.usage_wanted = usage_wanted
        self.id = ("chatcmpl-" if kind == "chat.completion" else "cmpl-") + secrets.token_hex(12)
        self.created = int(time.time())
        self.sent_role = False

    def head(self, chunk: bool) -> dict[str, Any]:
        kind = self.kind + (".chunk" if chunk and self.kind == "chat.completion" else "")
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
        }

    def chunks(self, event: Event) -> list[Chunk]:
        if isinstance(event, Token):
            return [{**self.head(True), "choices": [self._delta(text=event.text)]}]
        out = []
        if event.tool_calls:
            calls = [{"index": i, **c} for i, c in enumerate(_tool_calls(event))]
            out.append({**self.head(True), "choices": [self._delta(tool_calls=calls)]})
        final = self._delta(finish=_finish_reason(event))
        out.append({**self.head(True), "choices": [final]})
        if self.usage_wanted:
            out.append({**self.head(True), "choices": [], "usage": _usage(event)})
        return out

    def whole(self, events: list[Event]) -> dict[str, Any]:
        text = "".join(e.text for e in events if isinstance(e, Token))
        end = events[-1]
        assert isinstance(end, Finished)  # a stream ends with one, or raises
        choice: dict[str, Any] = {"index": 0, "finish_reason": _finish_reason(end)}
        if self.kind == "chat.completion":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if end.tool_calls:
                message["tool_calls"] = _tool_calls(end)
            choice["message"] = message
        else:
            choice.update(text=text, logprobs=None)
        return {**self.head(False), "choices": [choice], "usage": _usage(end)}

    def _delta(
        self,
        text: str | None = None,
        tool_calls: list[Any] | None = None,
        finish: str | None = None,
    ) -> dict[str, Any]:
        if self.kind != "chat.completion":
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        delta: dict[str, Any] = {}
        if not self.sent_role:
            delta["role"] = "assistant"
            self.sent_role = True
        if text is not None:
            delta["content"] = text
        if tool_calls:
            delta["tool_calls"] = tool_calls
        return {"index": 0, "delta": delta, "finish_reason": finish}


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI sampling fields as native options; what is not given stays the model's default
    (``params.json``), where Ollama would force temperature and top_p to 1."""
    options: dict[str, Any] = {}
    for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        if body.get(name) is not None:
            options[name] = field(body, name, float, 0.0)
    max_tokens = field(body, "max_completion_tokens", int, 0) or field(body, "max_tokens", int, 0)
    if max_tokens:
        options["num_predict"] = max_tokens
    if body.get("seed") is not None:
        options["seed"] = field(body, "seed", int, 0)
    if body.get("logit_bias") is not None:
        options["logit_bias"] = body["logit_bias"]  # checked with the other options
    stops = string_list(body, "stop")
    if stops:
        options["stop"] = stops
    if field(body, "n", int, 1) != 1:
        raise BadRequest("n: only one choice per request is supported")
    return options


def _response_format(value: Any) -> str | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return json.dumps(schema)
    raise BadRequest('response_format: want type "text", "json_object" or "json_schema"')


def _usage_wanted(body: dict[str, Any]) -> bool:
    stream_options = body.get("stream_options")
    return isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))


def _usage(event: Finished) -> dict[str, int]:
    return {
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.eval_tokens,
        "total_tokens": event.prompt_tokens + event.eval_tokens,
    }


def _finish_reason(event: Finished) -> str:
    if event.tool_calls:
        return "tool_calls"
    return "length" if event.reason == "length" else "stop"


def _tool_calls(event: Finished) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
        }
        for call in event.tool_calls
    ]


def _model_json(name: str, created: float) -> dict[str, Any]:
    owner = name.rsplit("/", 1)[0] if "/" in name else "library"
    return {"id": name, "object": "model", "created": int(created), "owned_by": owner}


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
