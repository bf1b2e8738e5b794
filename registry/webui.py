"""The registry browser at ``/ui``: the page (``registry/ui/``) and the JSON it reads.

``/ui/api/...`` answers only what the caller may pull: the access gate authenticates every
``/ui`` request as it does ``/v2/`` ones (``Authorization: Basic`` or ``Bearer``; none is
anonymous) and these endpoints filter by it, so an anonymous browser sees exactly the
repositories an anonymous ``mdl pull`` could fetch. A repository the caller may not pull is
NAME_UNKNOWN, as if it did not exist. The page keeps the credentials in ``sessionStorage`` and
sends them in the ``Authorization`` header: no cookies, so no request a foreign page makes
carries them. The one state-changing call (deleting a tag) also needs the ``X-Mdl-UI`` header,
which a cross-site page cannot send without a CORS preflight this server never approves.
"""

from __future__ import annotations

import gzip
import json
import time
from importlib.resources import files
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mdl.registry import names
from mdl.registry.catalog_index import MAX_CONFIG_BYTES, CatalogIndex, search
from mdl.registry.context import ACCESS_SCOPE_KEY, Access, may
from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.model_card import MAX_TEXT_BYTES, card, text_layers, variants
from mdl.registry.repos import Repositories
from mdl.spec.digest import Digest
from mdl.spec.manifest import Index
from mdl.spec.webassets import ASSETS_PATH, SECURITY_HEADERS, Site, StaticFile, accepts_gzip

PAGE_SIZE = 50
MAX_PAGE = 200
CSRF_HEADER = "x-mdl-ui"
_GZIP_FROM = 1024


class RegistryPage:
    """The page, its assets and its API over one registry's repositories."""

    def __init__(self, repos: Repositories, auth_mode: str, read_only: bool = False) -> None:
        self.repos = repos
        self.auth_mode = auth_mode
        """``none``, ``basic`` or ``token``: whether the page asks for credentials."""
        self.read_only = read_only
        self.index = CatalogIndex(repos)
        self.site = Site.load(files("mdl.registry") / "ui")

    def routes(self) -> list[BaseRoute]:
        get = ["GET", "HEAD"]
        return [
            Route("/ui", self.page, methods=get),
            Route("/ui/", self.page, methods=get),
            Route(ASSETS_PATH + "{name}", self.asset, methods=get),
            Route("/ui/api/session", self.session, methods=["GET"]),
            Route("/ui/api/catalog", self.catalog, methods=["GET"]),
            Route("/ui/api/repository", self.repository, methods=["GET"]),
            Route("/ui/api/manifest", self.manifest, methods=["GET"]),
            Route("/ui/api/tag", self.delete_tag, methods=["DELETE"]),
        ]

    async def page(self, request: Request) -> Response:
        self.index.warm()
        return _static(self.site.page, request)

    async def asset(self, request: Request) -> Response:
        found = self.site.assets.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404)
        return _static(found, request)

    async def session(self, request: Request) -> Response:
        access: Access | None = request.scope.get(ACCESS_SCOPE_KEY)
        return _json(request, {"auth": self.auth_mode, "user": access.user if access else None})

    async def catalog(self, request: Request) -> Response:
        query = request.query_params.get("q", "")[:200]
        start = _number(request, "start", 0)
        n = min(_number(request, "n", PAGE_SIZE), MAX_PAGE)
        started = time.perf_counter()
        rows = await self.index.rows()
        page, total = search(rows, query, lambda name: may(request, name, "pull"), start, n)
        body = {"total": total, "start": start, "repositories": [row.to_json() for row in page]}
        answer = _json(request, body)
        elapsed_ms = (time.perf_counter() - started) * 1000
        answer.headers["Server-Timing"] = f"search;dur={elapsed_ms:.1f}"
        return answer

    async def repository(self, request: Request) -> Response:
        name = _visible(request, request.query_params.get("name", ""))
        body = await run_in_threadpool(self._repository, name)
        body["mayDelete"] = not self.read_only and may(request, name, "delete")
        return _json(request, body)

    def _repository(self, name: str) -> dict[str, Any]:
        tags = self.index.tags(name)
        if not tags and not self.repos.exists(name):
            raise OCIError(ErrorCode.NAME_UNKNOWN, {"name": name})
        listed = []
        for info in tags:
            revision = self.repos.revision(name, info.digest)
            facts = self.index.summaries.of(name, info.digest)
            entry: dict[str, Any] = {
                "tag": info.tag,
                "digest": str(info.digest),
                "updated": info.updated,
                "mediaType": revision.media_type,
                "summary": facts.to_json() if facts else None,
            }
            document = self.index.summaries.document(name, info.digest)
            if isinstance(document, Index):
                entry["variants"] = variants(document)
            listed.append(entry)
        return {"name": name, "tags": listed}

    async def manifest(self, request: Request) -> Response:
        name = _visible(request, request.query_params.get("name", ""))
        reference = names.reference(request.query_params.get("ref", ""))
        body = await run_in_threadpool(self._manifest, name, reference)
        return _json(request, body)

    def _manifest(self, name: str, reference: str | Digest) -> dict[str, Any]:
        revision = self.repos.resolve(name, reference)
        document = self.index.summaries.document(name, revision.digest)
        head = {
            "name": name,
            "reference": str(reference),
            "digest": str(revision.digest),
            "mediaType": revision.media_type,
        }
        if isinstance(document, Index):
            return {**head, "annotations": dict(document.annotations),
                    "variants": variants(document)}  # fmt: skip
        config = self.index.summaries.blob(name, document.config.digest, MAX_CONFIG_BYTES)
        texts = {}
        for path, layer in text_layers(document):
            data = self.index.summaries.blob(name, layer.digest, MAX_TEXT_BYTES)
            if data is not None:
                texts[path] = data.decode("utf-8", "replace")
        referrers = self.repos.referrers(name, revision.digest)
        return {**head, "card": card(document, config, texts, referrers)}

    async def delete_tag(self, request: Request) -> Response:
        if request.headers.get(CSRF_HEADER) != "1":
            raise OCIError(ErrorCode.DENIED, f"the page's requests carry {CSRF_HEADER}: 1")
        name = names.repository(request.query_params.get("name", ""))
        tag = names.tag(request.query_params.get("tag", ""))
        if not may(request, name, "pull"):
            raise OCIError(ErrorCode.NAME_UNKNOWN, {"name": name})
        if not may(request, name, "delete"):
            raise OCIError(ErrorCode.DENIED, f"repository:{name}:delete")
        if self.read_only:
            raise OCIError(ErrorCode.READ_ONLY)
        await run_in_threadpool(self.repos.delete_tag, name, tag)
        self.index.changed(name)
        return Response(status_code=204, headers=_API_HEADERS)


_API_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Vary": "Authorization"}


def _visible(request: Request, text: str) -> str:
    """A repository name the caller may pull; NAME_UNKNOWN when not (as if absent)."""
    name = names.repository(text)
    if not may(request, name, "pull"):
        raise OCIError(ErrorCode.NAME_UNKNOWN, {"name": name})
    return name


def _number(request: Request, key: str, default: int) -> int:
    text = request.query_params.get(key)
    if text is None:
        return default
    if not text.isdigit() or len(text) > 9:
        raise OCIError(ErrorCode.BAD_REQUEST, f"{key} must be a whole number")
    return int(text)


def _json(request: Request, body: object) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = {**_API_HEADERS, "Vary": "Authorization, Accept-Encoding"}
    if len(data) >= _GZIP_FROM and accepts_gzip(request.headers.get("accept-encoding", "")):
        data = gzip.compress(data, 5)
        headers["Content-Encoding"] = "gzip"
    return Response(data, 200, headers, "application/json")


def _static(found: StaticFile, request: Request) -> Response:
    answer = found.answer(request.method, request.headers)
    return Response(answer.body, answer.status, answer.headers, answer.content_type)
