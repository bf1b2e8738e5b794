"""The ASGI app: Ollama's and OpenAI's routes over one service, the chat page (``/ui``),
errors, guards, shutdown.

Every error a handler raises becomes JSON in the shape the caller's API uses, with the status
the error carries: ``{"error": "..."}`` under ``/api``, ``{"error": {"message", "type", …}}``
under ``/v1``. Nothing answers with a traceback, an unexpected exception's text, or the store's
absolute path.

Outermost, before routing: the browser guard (``mdl.spec.browser``: DNS rebinding, cross-site
requests from pages that are not allowed), then CORS for the allowed origins, then the body
limit (``limits.BodyLimit``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mdl.runtime.audio_api import audio_routes
from mdl.runtime.config import ServeConfig
from mdl.runtime.errors import RuntimeFailure
from mdl.runtime.limits import BodyLimit
from mdl.runtime.manage import Library
from mdl.runtime.ollama_api import OllamaAPI
from mdl.runtime.openai_api import OpenAIAPI, error_body
from mdl.runtime.service import Service
from mdl.runtime.streaming import ClientGone
from mdl.runtime.webui import ChatPage
from mdl.spec.browser import LOCAL_ORIGINS, BrowserGuard, BrowserPolicy, origin_regex
from mdl.spec.errors import InvalidReference, MdlError, ModelfileError, NotFound

log = logging.getLogger("mdl.runtime")

_OPENAI_TYPES = {400: "invalid_request_error", 403: "permission_error", 404: "not_found_error",
                 413: "invalid_request_error", 415: "invalid_request_error", 501: "not_implemented",
                 503: "service_unavailable"}  # fmt: skip


def create_app(service: Service, library: Library, config: ServeConfig) -> ASGIApp:
    """The server's app for ``config`` (its ``host`` is the address actually bound)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await service.scheduler.close()

    roots = {str(library.store.root), str(library.store.root.resolve())}

    def answer(request: Request, status: int, message: str) -> Response:
        for root in roots:
            message = message.replace(root, "$MDL_HOME/store")
        return JSONResponse(error_json(request.url.path, status, message), status_code=status)

    app = Starlette(
        routes=[
            *OllamaAPI(service, library).routes(),
            *OpenAIAPI(service, library).routes(),
            *audio_routes(service),
            *ChatPage().routes(),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origin_regex=origin_regex(LOCAL_ORIGINS + config.origins),
                allow_methods=["*"],
                allow_headers=["*"],
            ),
            Middleware(BodyLimit, limit=config.max_request_bytes, blobs=config.max_blob_bytes),
        ],
        exception_handlers=_handlers(answer),
        lifespan=lifespan,
    )
    return _Guarded(app, BrowserPolicy.create(config.host, config.origins))


def status_of(exc: MdlError) -> int:
    if isinstance(exc, RuntimeFailure):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidReference | ModelfileError):
        return 400
    return 500


def error_json(path: str, status: int, message: str) -> dict[str, Any]:
    """The error body of the API ``path`` belongs to."""
    if path.startswith("/v1/"):
        return error_body(message, _OPENAI_TYPES.get(status, "api_error"))
    return {"error": message}


class _Guarded:
    """``BrowserGuard`` answering in the error shape of the API the path belongs to."""

    def __init__(self, app: ASGIApp, policy: BrowserPolicy) -> None:
        self.native = BrowserGuard(app, policy, lambda s, m: error_json("/api", s, m))
        self.openai = BrowserGuard(app, policy, lambda s, m: error_json("/v1/", s, m))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = self.openai if str(scope.get("path", "")).startswith("/v1/") else self.native
        await guard(scope, receive, send)


Answer = Callable[[Request, int, str], Response]


def _handlers(answer: Answer) -> dict[Any, Callable[[Request, Exception], Any]]:
    async def mdl_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MdlError)
        status = status_of(exc)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return answer(request, status, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            message = f"{request.url.path}: no such endpoint"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return answer(request, exc.status_code, message)

    async def client_gone(request: Request, exc: Exception) -> Response:
        return Response(status_code=499)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return answer(request, 500, "internal error (the server log has the details)")

    return {MdlError: mdl_error, HTTPException: http_error, ClientGone: client_gone,
            Exception: unexpected}  # fmt: skip
