"""``create_app``: the registry's routes, its error translation and its middleware, wired.

Routes follow the distribution spec (end-1 … end-13) plus the catalog, ``/healthz``,
``/metrics`` and, in token mode, ``/token``; the repository routes come from ``routes.SHAPES``,
the table the access gate reads paths with. Outermost, before any routing, the browser guard
refuses paths with control characters (every mode) and, in open mode, foreign hosts and
cross-site requests (``mdl.spec.browser``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from mdl.registry import blobs, manifests, referrers, tags, uploads
from mdl.registry.auth.gate import AuthSettings, Gate
from mdl.registry.auth.token_endpoint import token_endpoint
from mdl.registry.catalog_index import ChangeWatch
from mdl.registry.context import Registry
from mdl.registry.drain import Drain, DrainGuard
from mdl.registry.errors import ErrorCode, OCIError, response
from mdl.registry.observe import Metrics, Observe
from mdl.registry.proxy import Proxy
from mdl.registry.proxy_upstream import UpstreamSettings
from mdl.registry.repos import Repositories
from mdl.registry.routes import SHAPES
from mdl.registry.sessions import UploadLimits, Uploads
from mdl.registry.storage.driver import StorageDriver
from mdl.registry.webui import RegistryPage
from mdl.spec.browser import BrowserGuard, BrowserPolicy
from mdl.spec.errors import StoreError, StoreFull
from mdl.spec.routes import BASE, CATALOG

log = logging.getLogger("mdl.registry")
Endpoint = Callable[[Request], Awaitable[Response]]
ENDPOINTS: dict[tuple[str, str], Endpoint] = {
    ("tags", "GET"): tags.tags_list,
    ("manifest", "GET"): manifests.get,
    ("manifest", "PUT"): manifests.put,
    ("manifest", "DELETE"): manifests.delete,
    ("uploads", "POST"): uploads.start,
    ("upload", "PATCH"): uploads.patch,
    ("upload", "PUT"): uploads.finish,
    ("upload", "GET"): uploads.status,
    ("upload", "DELETE"): uploads.cancel,
    ("blob", "GET"): blobs.get,
    ("blob", "DELETE"): blobs.delete,
    ("referrers", "GET"): referrers.get,
}


async def base(request: Request) -> Response:
    return JSONResponse({})


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def routes(metrics: Metrics, with_token: bool) -> list[BaseRoute]:
    async def metrics_endpoint(request: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    table: list[BaseRoute] = [
        Route(BASE.template, base, methods=list(BASE.methods)),
        Route(CATALOG.template, tags.catalog, methods=list(CATALOG.methods)),
        *(
            Route(shape.path, ENDPOINTS[(shape.kind, method)], methods=[method])
            for shape in SHAPES
            for method in shape.methods
        ),
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


def _browser_error(status: int, message: str) -> object:
    code = ErrorCode.BAD_REQUEST if status == 400 else ErrorCode.DENIED
    return OCIError(code, message).envelope()


def create_app(
    driver: StorageDriver,
    *,
    auth: AuthSettings | None = None,
    read_only: bool = False,
    browser: BrowserPolicy | None = None,
    limits: UploadLimits | None = None,
    redirect: bool = True,
    proxy: UpstreamSettings | None = None,
    ui: bool = True,
    secret: bytes | None = None,
    drain: Drain | None = None,
) -> Starlette:
    """The registry over ``driver``; ``auth`` None means open access (the loopback default).

    ``browser`` is the host/origin policy open access answers browsers with; with auth (or
    None) only the path check applies. ``redirect`` sends blob GETs to the backend's own URL
    when it has one (``StorageDriver.url``). ``proxy`` makes it a pull-through cache of that
    upstream: pulls fill the storage, pushes and deletes are refused. ``ui`` serves the browser
    at ``/ui``. ``secret`` signs the upload hash state saved in storage (``sessions``), so
    processes given the same one carry each other's hashes on. ``drain`` turns the health
    check to 503 when it starts (``drain``).
    """
    repos = Repositories(driver)
    metrics = Metrics()
    mode = "none" if auth is None else "token" if auth.issuer is not None else "basic"
    page = RegistryPage(repos, mode, read_only) if ui else None
    app = Starlette(
        routes=routes(metrics, with_token=auth is not None and auth.issuer is not None)
        + (page.routes() if page else []),
        middleware=[
            *([Middleware(ChangeWatch, index=page.index)] if page else []),
            Middleware(Observe, metrics=metrics),
            Middleware(DrainGuard, drain=drain or Drain()),
            Middleware(
                BrowserGuard, policy=browser if auth is None else None, error_body=_browser_error
            ),
            Middleware(
                Gate,
                auth=auth,
                read_only=read_only or proxy is not None,
                refusal=ErrorCode.CACHE_READ_ONLY if proxy is not None else ErrorCode.READ_ONLY,
            ),
        ],
        exception_handlers={
            OCIError: _oci_error,
            HTTPException: _http_error,
            StoreError: _store_error,
            Exception: _unexpected,
        },
    )
    sessions = Uploads(repos, limits or UploadLimits(), secret)
    metrics.gauge(
        "mdl_registry_upload_hashes",
        "Running upload hashes this process holds in memory.",
        sessions.cached,
    )
    metrics.gauge(
        "mdl_registry_upload_rehashes_total",
        "Upload commits that read their data back to hash it (no running hash carried on).",
        lambda: sessions.rehashed,
        "counter",
    )
    cache = Proxy(repos, sessions, proxy) if proxy is not None else None
    app.state.registry = Registry(
        repos, sessions, open_access=auth is None, redirect=redirect, proxy=cache
    )
    if auth is not None:
        app.state.auth = auth
    return app
