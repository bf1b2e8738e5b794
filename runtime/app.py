"""The ASGI app: Ollama's and OpenAI's routes over one service, errors, CORS, shutdown.

Every error a handler raises becomes JSON in the shape the caller's API uses, with the status
the error carries: ``{"error": "..."}`` under ``/api``, ``{"error": {"message", "type", …}}``
under ``/v1``. Nothing answers with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mdl.runtime.config import origin_regex
from mdl.runtime.errors import RuntimeFailure
from mdl.runtime.manage import Library
from mdl.runtime.ollama_api import OllamaAPI
from mdl.runtime.openai_api import OpenAIAPI, error_body
from mdl.runtime.service import Service
from mdl.runtime.streaming import ClientGone
from mdl.spec.errors import InvalidReference, MdlError, ModelfileError, NotFound

log = logging.getLogger("mdl.runtime")

_OPENAI_TYPES = {400: "invalid_request_error", 404: "not_found_error", 501: "not_implemented",
                 503: "service_unavailable"}  # fmt: skip


def create_app(service: Service, library: Library, origins: tuple[str, ...]) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await service.scheduler.close()

    return Starlette(
        routes=[*OllamaAPI(service, library).routes(), *OpenAIAPI(service, library).routes()],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origin_regex=origin_regex(origins),
                allow_methods=["*"],
                allow_headers=["*"],
            )
        ],
        exception_handlers={
            MdlError: _mdl_error,
            HTTPException: _http_error,
            ClientGone: _client_gone,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )


def status_of(exc: MdlError) -> int:
    if isinstance(exc, RuntimeFailure):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, InvalidReference | ModelfileError):
        return 400
    return 500


def error_response(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/v1/"):
        body = error_body(message, _OPENAI_TYPES.get(status, "api_error"))
        return JSONResponse(body, status_code=status)
    return JSONResponse({"error": message}, status_code=status)


async def _mdl_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MdlError)
    status = status_of(exc)
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error_response(request, status, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"{request.url.path}: no such endpoint"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(request, exc.status_code, message)


async def _client_gone(request: Request, exc: Exception) -> Response:
    return Response(status_code=499)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path)
    return error_response(request, 500, f"internal error: {type(exc).__name__}: {exc}")
