"""The ASGI app: Ollama's API (with the chat page, ``/ui``) and OpenAI's, each its own
sub-application over one service, with its own error handlers; shutdown.

Each API answers every error a handler raises in its own shape, ``{"error": "..."}`` for
Ollama's, ``{"error": {"message", "type", …}}`` for OpenAI's (mounted at ``/v1``), with the
status and text ``errors.Disclose`` gives: no traceback, no unexpected exception's text, no
absolute path of the store.

Each sub-application's middleware, outermost first: the browser guard (``mdl.spec.browser``:
DNS rebinding, cross-site requests from pages that are not allowed), CORS for the allowed
origins, the body limit (``limits.BodyLimit``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp

from mdl.runtime import ollama_api, openai_api
from mdl.runtime.audio_api import audio_routes
from mdl.runtime.config import ServeConfig
from mdl.runtime.errors import Disclose
from mdl.runtime.library import Library
from mdl.runtime.limits import BodyLimit
from mdl.runtime.service import Service
from mdl.runtime.streaming import Chunk, ClientGone
from mdl.runtime.webui import ChatPage
from mdl.spec.browser import LOCAL_ORIGINS, BrowserGuard, BrowserPolicy, origin_regex
from mdl.spec.errors import MdlError

ErrorBody = Callable[[int, str], Chunk]


def create_app(service: Service, library: Library, config: ServeConfig) -> ASGIApp:
    """The server's app for ``config`` (its ``host`` is the address actually bound)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await service.scheduler.close()

    root = library.store.root
    disclose = Disclose(tuple(sorted({str(root), str(root.resolve())}, key=len, reverse=True)))
    policy = BrowserPolicy.create(config.host, config.origins)

    def api(routes: list[BaseRoute], body: ErrorBody) -> Starlette:
        return Starlette(
            routes=routes,
            middleware=[
                Middleware(BrowserGuard, policy=policy, error_body=body),
                Middleware(
                    CORSMiddleware,
                    allow_origin_regex=origin_regex(LOCAL_ORIGINS + config.origins),
                    allow_methods=["*"],
                    allow_headers=["*"],
                ),
                Middleware(BodyLimit, limit=config.max_request_bytes, blobs=config.max_blob_bytes),
            ],
            exception_handlers=_handlers(disclose, body),
        )

    openai = openai_api.OpenAIAPI(service, library, disclose)
    native = ollama_api.OllamaAPI(service, library, disclose)
    return Starlette(
        routes=[
            Mount(
                openai_api.PREFIX,
                api([*openai.routes(), *audio_routes(service)], openai_api.error_body),
            ),
            Mount("", api([*native.routes(), *ChatPage().routes()], ollama_api.error_body)),
        ],
        lifespan=lifespan,
    )


Handler = Callable[[Request, Exception], Any]


def _handlers(disclose: Disclose, body: ErrorBody) -> dict[Any, Handler]:
    def answer(status: int, message: str) -> Response:
        return JSONResponse(body(status, message), status_code=status)

    async def error(request: Request, exc: Exception) -> Response:
        return answer(*disclose(exc, f"{request.method} {request.url.path}"))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"{request.url.path}: no such endpoint"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return answer(exc.status_code, message)

    async def client_gone(request: Request, exc: Exception) -> Response:
        return Response(status_code=499)

    return {MdlError: error, HTTPException: http_error, ClientGone: client_gone,
            Exception: error}  # fmt: skip
