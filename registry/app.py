"""``create_app``: the registry's routes, its error translation and its middleware, wired.

Routes follow the distribution spec (end-1 … end-13) plus the catalog, ``/healthz``,
``/metrics`` and, in token mode, ``/token``. Repository names hold ``/``, so they use
Starlette's ``path`` convertor; the name is validated inside each endpoint (NAME_INVALID).
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mdl.registry import blobs, manifests, referrers, tags, uploads
from mdl.registry.auth.gate import AuthSettings, Gate
from mdl.registry.auth.token_endpoint import token_endpoint
from mdl.registry.context import Registry
from mdl.registry.errors import ErrorCode, OCIError, response
from mdl.registry.observe import Metrics, Observe
from mdl.registry.repos import Repositories
from mdl.registry.sessions import Uploads
from mdl.registry.storage.driver import StorageDriver
from mdl.spec.errors import StoreError, StoreFull

log = logging.getLogger("mdl.registry")
NAME = "/v2/{name:path}"


async def base(request: Request) -> Response:
    return JSONResponse({})


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def routes(metrics: Metrics, with_token: bool) -> list[BaseRoute]:
    async def metrics_endpoint(request: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    table: list[BaseRoute] = [
        Route("/v2/", base, methods=["GET"]),
        Route("/v2/_catalog", tags.catalog, methods=["GET"]),
        Route(f"{NAME}/tags/list", tags.tags_list, methods=["GET"]),
        Route(f"{NAME}/manifests/{{reference}}", manifests.get, methods=["GET", "HEAD"]),
        Route(f"{NAME}/manifests/{{reference}}", manifests.put, methods=["PUT"]),
        Route(f"{NAME}/manifests/{{reference}}", manifests.delete, methods=["DELETE"]),
        Route(f"{NAME}/blobs/uploads/", uploads.start, methods=["POST"]),
        Route(f"{NAME}/blobs/uploads/{{uuid}}", uploads.patch, methods=["PATCH"]),
        Route(f"{NAME}/blobs/uploads/{{uuid}}", uploads.finish, methods=["PUT"]),
        Route(f"{NAME}/blobs/uploads/{{uuid}}", uploads.status, methods=["GET"]),
        Route(f"{NAME}/blobs/uploads/{{uuid}}", uploads.cancel, methods=["DELETE"]),
        Route(f"{NAME}/blobs/{{digest}}", blobs.get, methods=["GET", "HEAD"]),
        Route(f"{NAME}/blobs/{{digest}}", blobs.delete, methods=["DELETE"]),
        Route(f"{NAME}/referrers/{{digest}}", referrers.get, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if with_token:
        table.append(Route("/token", token_endpoint, methods=["GET"]))
    return table


async def _oci_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OCIError)
    return response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = ErrorCode.UNSUPPORTED if exc.status_code == 405 else ErrorCode.NOT_FOUND
    return response(OCIError(code, exc.detail, exc.headers))


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s", request.method, request.url.path, exc)
    code = ErrorCode.STORAGE_FULL if isinstance(exc, StoreFull) else ErrorCode.INTERNAL
    return response(OCIError(code, str(exc)))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed", request.method, request.url.path)
    return response(OCIError(ErrorCode.INTERNAL))


def create_app(
    driver: StorageDriver, *, auth: AuthSettings | None = None, read_only: bool = False
) -> Starlette:
    """The registry over ``driver``; ``auth`` None means open access (the loopback default)."""
    repos = Repositories(driver)
    metrics = Metrics()
    app = Starlette(
        routes=routes(metrics, with_token=auth is not None and auth.issuer is not None),
        middleware=[
            Middleware(Observe, metrics=metrics),
            Middleware(Gate, auth=auth, read_only=read_only),
        ],
        exception_handlers={
            OCIError: _oci_error,
            HTTPException: _http_error,
            StoreError: _store_error,
            Exception: _unexpected,
        },
    )
    app.state.registry = Registry(repos, Uploads(repos), open_access=auth is None)
    if auth is not None:
        app.state.auth = auth
    return app
