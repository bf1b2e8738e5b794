"""The chat page at ``/ui``: static files shipped in the package (``runtime/ui/``), nothing else.

The page talks to the server only through the public APIs, like any other client; nothing of
a conversation reaches the server except the requests themselves. How the files are served
(hashed names, ETags, gzip, the CSP) is ``mdl.spec.webassets``, shared with the registry's page.
"""

from __future__ import annotations

from importlib.resources import files

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from mdl.spec.webassets import ASSETS_PATH, Site, StaticFile


def static_response(found: StaticFile, request: Request) -> Response:
    answer = found.answer(request.method, request.headers)
    return Response(answer.body, answer.status, answer.headers, answer.content_type)


class ChatPage:
    """The page and its hashed assets, read from the package once."""

    def __init__(self) -> None:
        self.site = Site.load(files("mdl.runtime") / "ui")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/ui", self.index, methods=["GET", "HEAD"]),
            Route("/ui/", self.index, methods=["GET", "HEAD"]),
            Route(ASSETS_PATH + "{name}", self.asset, methods=["GET", "HEAD"]),
        ]

    async def index(self, request: Request) -> Response:
        return static_response(self.site.page, request)

    async def asset(self, request: Request) -> Response:
        found = self.site.assets.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404)
        return static_response(found, request)
