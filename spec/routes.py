"""The distribution API's routes, named once (as distribution's ``routes.go``): the registry
builds its router and its access gate from this table, the client its URLs.

A template's ``{name}`` is a repository name (it holds ``/``); the other parameters are one
path segment each. ``path`` fills a template in, percent-encoding what is not a name, tag,
digest or upload id character, so a reference can never add a segment.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from urllib.parse import quote, urlencode

_PARAMETER = string.Formatter()


@dataclass(frozen=True)
class Route:
    kind: str
    template: str
    methods: tuple[str, ...]
    """In the router's order of preference; a GET route answers HEAD too."""

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(field for _, field, _, _ in _PARAMETER.parse(self.template) if field)

    def path(self, query: dict[str, str] | None = None, **params: str) -> str:
        """The template filled in: ``MANIFEST.path(name="team/m", reference="v1")`` is
        ``/v2/team/m/manifests/v1``; ``query`` is appended encoded."""
        if set(params) != set(self.parameters):
            raise ValueError(f"{self.kind}: needs {self.parameters}, got {tuple(params)}")
        filled = {
            key: quote(value, safe="/" if key == "name" else ":") for key, value in params.items()
        }
        path = self.template.format(**filled)
        return f"{path}?{urlencode(query, safe=':/')}" if query else path


BASE = Route("base", "/v2/", ("GET",))
CATALOG = Route("catalog", "/v2/_catalog", ("GET",))
TAGS = Route("tags", "/v2/{name}/tags/list", ("GET",))
MANIFEST = Route("manifest", "/v2/{name}/manifests/{reference}", ("GET", "PUT", "DELETE"))
UPLOADS = Route("uploads", "/v2/{name}/blobs/uploads/", ("POST",))
UPLOAD = Route("upload", "/v2/{name}/blobs/uploads/{uuid}", ("PATCH", "PUT", "GET", "DELETE"))
BLOB = Route("blob", "/v2/{name}/blobs/{digest}", ("GET", "DELETE"))
REFERRERS = Route("referrers", "/v2/{name}/referrers/{digest}", ("GET",))

REPOSITORY_ROUTES = (TAGS, MANIFEST, UPLOADS, UPLOAD, BLOB, REFERRERS)
"""The routes under a repository name, in the router's order (``uploads`` before ``blob``)."""
