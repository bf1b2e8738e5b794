"""Ollama's API (``/api/*``) as a thin adapter: JSON in, native requests, events out as NDJSON.

Field names, defaults (``stream`` true) and response shapes are Ollama's; durations are in
nanoseconds. Errors are raised and turned into ``{"error": "..."}`` by ``app.py``; a stream that
fails midway ends with such a line. Handlers reach the store only through ``Library``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mdl.runtime import ollama_models as describe
from mdl.runtime.errors import BadRequest, Disclose
from mdl.runtime.library import Library
from mdl.runtime.messages import ToolCall, message_from_json, tool_from_json
from mdl.runtime.ollama_create import create_modelfile
from mdl.runtime.payload import field, read_object, required_str, string_list
from mdl.runtime.runner import Token
from mdl.runtime.service import (
    ChatRequest,
    EmbedRequest,
    Event,
    Finished,
    GenerateRequest,
    Service,
    format_option,
    unit_vector,
)
from mdl.runtime.streaming import Chunk, Framing, answer, compact, until_disconnected

NDJSON = "application/x-ndjson"
API_VERSION = "0.12.0"
"""The Ollama API version this runtime answers as (``/api/version``); clients check it."""

Render = Callable[[Event], list[Chunk]]


def error_body(status: int, message: str) -> Chunk:
    return {"error": message}


def _line(chunk: Chunk) -> bytes:
    return compact(chunk) + b"\n"


FRAMING = Framing(NDJSON, _line, lambda status, message: _line(error_body(status, message)))


class OllamaAPI:
    def __init__(self, service: Service, library: Library, disclose: Disclose) -> None:
        self.service = service
        self.library = library
        self.disclose = disclose

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.root, methods=["GET", "HEAD"]),
            Route("/api/version", self.version, methods=["GET", "HEAD"]),
            Route("/api/tags", self.tags, methods=["GET", "HEAD"]),
            Route("/api/ps", self.ps, methods=["GET"]),
            Route("/api/show", self.show, methods=["POST"]),
            Route("/api/generate", self.generate, methods=["POST"]),
            Route("/api/chat", self.chat, methods=["POST"]),
            Route("/api/embed", self.embed, methods=["POST"]),
            Route("/api/embeddings", self.embeddings, methods=["POST"]),
            Route("/api/copy", self.copy, methods=["POST"]),
            Route("/api/delete", self.delete, methods=["DELETE"]),
            Route("/api/create", self.create, methods=["POST"]),
            Route("/api/pull", self.pull, methods=["POST"]),
            Route("/api/push", self.push, methods=["POST"]),
            Route("/api/blobs/{digest}", self.blob, methods=["HEAD", "POST"]),
        ]

    async def root(self, request: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": API_VERSION})

    async def tags(self, request: Request) -> Response:
        listed = await self.library.list()
        return JSONResponse({"models": [describe.tag_entry(m) for m in listed]})

    async def ps(self, request: Request) -> Response:
        models = []
        for slot in self.service.scheduler.loaded():
            model = self.service.served.get(slot.want.identity)
            if model is not None:
                entry = describe.ps_entry(slot, model)
                busy = slot.gate.busy
                entry["sequences"] = {
                    "busy": busy,
                    "total": slot.gate.capacity,
                    "queued": slot.users - busy,
                }
                models.append(entry)
        return JSONResponse({"models": models})

    async def show(self, request: Request) -> Response:
        body = await read_object(request)
        name = field(body, "model", str, "") or required_str(body, "name")
        model = await self.service.resolve(name)
        return JSONResponse(await self.library.show(model, describe.show))

    async def generate(self, request: Request) -> Response:
        body = await read_object(request)
        context = body.get("context")
        if context is not None and not (
            isinstance(context, list) and all(isinstance(t, int) for t in context)
        ):
            raise BadRequest('"context" must be a list of token ids')
        native = GenerateRequest(
            model=required_str(body, "model"),
            prompt=field(body, "prompt", str, ""),
            suffix=field(body, "suffix", str, ""),
            system=field(body, "system", str, "") or None,
            template=field(body, "template", str, "") or None,
            raw=field(body, "raw", bool, False),
            context=tuple(context) if context is not None else None,
            options=body.get("options"),
            format=format_option(body.get("format")),
            keep_alive=body.get("keep_alive"),
            images=len(field(body, "images", list, [])),
        )
        render = _generate_render(native.model)
        events = self.service.generate(native)
        return await self._answer(request, body, events, render, _generate_sum)

    async def chat(self, request: Request) -> Response:
        body = await read_object(request)
        raw_messages = field(body, "messages", list, [])
        native = ChatRequest(
            model=required_str(body, "model"),
            messages=tuple(message_from_json(m) for m in raw_messages),
            tools=tuple(tool_from_json(t) for t in field(body, "tools", list, [])),
            options=body.get("options"),
            format=format_option(body.get("format")),
            keep_alive=body.get("keep_alive"),
            images=sum(len(m.get("images") or []) for m in raw_messages if isinstance(m, dict)),
        )
        return await self._answer(
            request, body, self.service.chat(native), _chat_render(native.model), _chat_sum
        )

    async def embed(self, request: Request) -> Response:
        body = await read_object(request)
        if "input" not in body:
            raise BadRequest("input is required")
        dimensions = field(body, "dimensions", int, 0)
        native = EmbedRequest(
            model=required_str(body, "model"),
            inputs=tuple(string_list(body, "input")),
            truncate=field(body, "truncate", bool, True),
            options=body.get("options"),
            keep_alive=body.get("keep_alive"),
        )
        result = await until_disconnected(request, self.service.embed(native))
        return JSONResponse(
            {
                "model": native.model,
                "embeddings": [unit_vector(v, dimensions) for v in result.vectors],
                "total_duration": result.total_ns,
                "load_duration": result.load_ns,
                "prompt_eval_count": result.prompt_tokens,
            }
        )

    async def embeddings(self, request: Request) -> Response:
        """The legacy endpoint: one prompt, one vector, not normalised."""
        body = await read_object(request)
        prompt = field(body, "prompt", str, "")
        native = EmbedRequest(
            model=required_str(body, "model"),
            inputs=(prompt,) if prompt else (),
            options=body.get("options"),
            keep_alive=body.get("keep_alive"),
        )
        result = await until_disconnected(request, self.service.embed(native))
        return JSONResponse({"embedding": list(result.vectors[0]) if result.vectors else []})

    async def copy(self, request: Request) -> Response:
        body = await read_object(request)
        source, destination = required_str(body, "source"), required_str(body, "destination")
        await self.library.copy(source, destination)
        return Response(status_code=200)

    async def delete(self, request: Request) -> Response:
        body = await read_object(request)
        name = field(body, "model", str, "") or required_str(body, "name")
        unnamed = await self.library.delete(name)
        if unnamed is not None:
            await self.service.scheduler.unload(str(unnamed))
        return Response(status_code=200)

    async def create(self, request: Request) -> Response:
        body = await read_object(request)
        statuses = [{"status": "gathering model components"}]
        name = field(body, "model", str, "") or field(body, "name", str, "")
        await self.library.build(create_modelfile(body), name)
        statuses += [{"status": "writing manifest"}, {"status": "success"}]
        if field(body, "stream", bool, True):
            return Response(b"".join(_line(s) for s in statuses), media_type=NDJSON)
        return JSONResponse(statuses[-1])

    async def pull(self, request: Request) -> Response:
        return await self._transfer(request, "pull")

    async def push(self, request: Request) -> Response:
        return await self._transfer(request, "push")

    async def blob(self, request: Request) -> Response:
        digest = request.path_params["digest"]
        if request.method == "HEAD":
            found = await self.library.has_blob(digest)
            return Response(status_code=200 if found else 404)
        await self.library.put_blob(digest, request.stream())
        return Response(status_code=201)

    # -- helpers ------------------------------------------------------------------------------

    async def _answer(
        self,
        request: Request,
        body: dict[str, Any],
        events: AsyncGenerator[Event, None],
        render: Render,
        summarise: Callable[[list[Chunk]], Chunk],
    ) -> Response:
        """Stream the events as NDJSON, or (``stream: false``) answer once with their sum."""
        return await answer(
            request,
            events,
            field(body, "stream", bool, True),
            FRAMING,
            render,
            lambda events: summarise([chunk for event in events for chunk in render(event)]),
            self.disclose,
        )

    async def _transfer(self, request: Request, kind: str) -> Response:
        body = await read_object(request)
        name = field(body, "model", str, "") or required_str(body, "name")
        steps = self.library.transfer(kind, name, field(body, "insecure", bool, False))
        return await answer(
            request,
            steps,
            field(body, "stream", bool, True),
            FRAMING,
            lambda step: [{k: v for k, v in vars(step).items() if v is not None}],
            lambda steps: {"status": steps[-1].status},
            self.disclose,
        )


def _generate_render(model: str) -> Render:
    def render(event: Event) -> list[Chunk]:
        if isinstance(event, Token):
            return [{"model": model, "created_at": _now(), "response": event.text, "done": False}]
        final = {"model": model, "created_at": _now(), "response": "", **_done(event)}
        if event.context:
            final["context"] = list(event.context)
        return [final]

    return render


def _chat_render(model: str) -> Render:
    def render(event: Event) -> list[Chunk]:
        head = {"model": model, "created_at": _now()}
        if isinstance(event, Token):
            return [{**head, "message": _reply(event.text), "done": False}]
        chunks = []
        if event.tool_calls:
            message = _reply("", [_tool_call_json(c) for c in event.tool_calls])
            chunks.append({**head, "message": message, "done": False})
        chunks.append({**head, "message": _reply(""), **_done(event)})
        return chunks

    return render


def _generate_sum(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    return {**chunks[-1], "response": "".join(c.get("response", "") for c in chunks)}


def _chat_sum(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    content = "".join(c["message"]["content"] for c in chunks)
    calls = [call for c in chunks for call in c["message"].get("tool_calls", [])]
    message = _reply(content, calls)
    return {**chunks[-1], "message": message}


def _done(event: Finished) -> dict[str, Any]:
    out: dict[str, Any] = {"done": True, "done_reason": event.reason}
    if event.reason in ("load", "unload"):
        return out
    return {
        **out,
        "total_duration": event.total_ns,
        "load_duration": event.load_ns,
        "prompt_eval_count": event.prompt_tokens,
        "prompt_eval_duration": event.prompt_ns,
        "eval_count": event.eval_tokens,
        "eval_duration": event.eval_ns,
    }


def _reply(content: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "function": {"name": call.name, "arguments": dict(call.arguments)}}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
