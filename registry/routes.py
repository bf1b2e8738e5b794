"""The registry's repository URL shapes: ``mdl.spec.routes`` (the table the client builds its
URLs from) in Starlette's path syntax. ``app.py`` builds its router from them and the access
gate (``auth/scopes.py``) reads requests with them, so both see the same repository name in
the same path (a path the table does not parse is denied, never guessed).

Names hold ``/``, so they use Starlette's ``path`` convertor; the endpoints and the gate check
the name itself with ``mdl.spec``'s grammar (NAME_INVALID).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.routing import compile_path

from mdl.spec.routes import REPOSITORY_ROUTES


@dataclass(frozen=True)
class Shape:
    kind: str
    """``tags``, ``manifest``, ``uploads`` (the collection), ``upload``, ``blob``, ``referrers``."""
    path: str
    methods: tuple[str, ...]
    """In the router's order of preference; a GET route answers HEAD too, as Starlette's do."""

    @property
    def regex(self) -> re.Pattern[str]:
        return _COMPILED[self.path]


SHAPES = tuple(
    Shape(route.kind, route.template.replace("{name}", "{name:path}"), route.methods)
    for route in REPOSITORY_ROUTES
)
_COMPILED = {shape.path: compile_path(shape.path)[0] for shape in SHAPES}


def allows(shape: Shape, method: str) -> bool:
    return method in shape.methods or (method == "HEAD" and "GET" in shape.methods)


def match(method: str, path: str) -> tuple[Shape, dict[str, str]] | None:
    """The shape the router sends ``method path`` to, and its parameters; None if none parses it.

    Like Starlette's router: the first shape that takes the method, else the first whose path
    matches (the router answers 405 there). The whole path must match: no trailing newline.
    """
    partial = None
    for shape in SHAPES:
        found = shape.regex.fullmatch(path)
        if found is None:
            continue
        if allows(shape, method):
            return shape, found.groupdict()
        partial = partial or (shape, found.groupdict())
    return partial
