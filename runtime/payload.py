"""Reading request bodies: JSON objects and typed fields, each problem a BadRequest naming it.

The body of a JSON endpoint must say it is JSON: ``application/json``, a ``…+json`` type, or no
Content-Type at all. ``text/plain``, ``multipart/form-data`` and other types are refused (415):
a web page can send those cross-site without asking first. ``application/x-www-form-urlencoded``
is what ``curl -d '{…}'`` sends (Ollama's own examples use it), so it is accepted, but only
from a client that is not a browser (no ``Origin``, ``Sec-Fetch-Site`` or ``Sec-Fetch-Mode``).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from starlette.requests import Request

from mdl.runtime.errors import BadRequest, WrongContentType

T = TypeVar("T")
_BROWSER_MARKERS = ("origin", "sec-fetch-site", "sec-fetch-mode")


async def read_object(request: Request) -> dict[str, Any]:
    check_json_type(request)
    body = await request.body()
    if not body.strip():
        raise BadRequest("missing request body")
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON in request body: {exc}") from exc
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    return value


def check_json_type(request: Request) -> None:
    """WrongContentType unless the request's Content-Type allows reading its body as JSON."""
    raw = request.headers.get("content-type")
    if raw is None:
        return
    media = raw.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return
    if media == "application/x-www-form-urlencoded" and not any(
        name in request.headers for name in _BROWSER_MARKERS
    ):
        return
    raise WrongContentType(
        f"the request body must be JSON (Content-Type application/json), not {media!r}"
    )


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def field(body: dict[str, Any], name: str, kind: type[T], default: T) -> T:
    """``body[name]`` if present and not null, checked against ``kind``; else ``default``."""
    value = body.get(name)
    if value is None:
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise BadRequest(f'"{name}" must be {_kind_name(kind)}')
    return value


def required_str(body: dict[str, Any], name: str) -> str:
    value = field(body, name, str, "")
    if not value:
        raise BadRequest(f"{name} is required")
    return value


def string_list(body: dict[str, Any], name: str) -> list[str]:
    """A string or a list of strings."""
    value = body.get(name)
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise BadRequest(f'"{name}" must be a string or a list of strings')
    return items


def _kind_name(kind: type) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "a list", dict: "an object"}.get(kind, kind.__name__)  # fmt: skip
