"""Discovery endpoints: a repository's tags and the registry's catalog, both paginated.

Tags are listed in lexical order; ``n`` limits a page, ``last`` starts after a name, and a
``Link: <…>; rel="next"`` header points at the next page while more remain. A pull-through
cache lists its upstream's tags (every page of them, sorted and paginated here; the cached tags
while the upstream is down); its catalog lists the repositories it has cached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mdl.registry import names
from mdl.registry.context import may, registry
from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.pagination import link, page_size, paginate
from mdl.registry.proxy import CACHE_STATUS, STALE_TAGS
from mdl.registry.proxy_upstream import DOWN
from mdl.spec.routes import CATALOG, TAGS


async def tags_list(request: Request) -> Response:
    name = names.repository(request.path_params["name"])
    reg = registry(request)
    page_size(request.query_params)  # a bad n is refused before the upstream is asked
    found, headers = None, {}
    if reg.proxy is not None:
        try:
            found = await reg.proxy.tags(name)
        except OCIError as exc:
            if exc.code not in DOWN:
                raise
            headers[CACHE_STATUS] = STALE_TAGS
    if found is None:
        repos = reg.repos
        if not await run_in_threadpool(repos.exists, name):
            raise OCIError(ErrorCode.NAME_UNKNOWN, {"name": name})
        found = await run_in_threadpool(repos.tags, name)
    page = _page(
        request, TAGS.path(name=name), sorted(found), lambda page: {"name": name, "tags": page}
    )
    page.headers.update(headers)
    return page


async def catalog(request: Request) -> Response:
    repos = registry(request).repos
    everything = sorted(await run_in_threadpool(lambda: list(repos.names())))
    visible = [name for name in everything if may(request, name, "pull")]
    return _page(request, CATALOG.path(), visible, lambda page: {"repositories": page})


def _page(
    request: Request,
    path: str,
    items: Sequence[str],
    body: Callable[[list[str]], dict[str, object]],
) -> Response:
    n = page_size(request.query_params)
    chosen, next_last = paginate(items, n, request.query_params.get("last"))
    headers = {"Link": link(path, n, next_last)} if next_last is not None and n else {}
    return JSONResponse(body(chosen), headers=headers)
