"""``n``/``last`` pagination of sorted lists (tags, catalog) and its ``Link`` header."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.numbers import decimal

MAX_PAGE = 10_000


def page_size(params: Mapping[str, str]) -> int | None:
    """The ``n`` parameter: None when absent; PAGINATION_NUMBER_INVALID when not 0..10000."""
    text = params.get("n")
    if text is None or text == "":
        return None
    n = decimal(text)
    if n is None or n > MAX_PAGE:
        raise OCIError(ErrorCode.PAGINATION_NUMBER_INVALID, {"n": text[:50]})
    return n


def paginate(items: Sequence[str], n: int | None, last: str | None) -> tuple[list[str], str | None]:
    """The items after ``last`` (lexically), at most ``n``, and the ``last`` of the next page."""
    start = bisect.bisect_right(items, last) if last else 0
    rest = list(items[start:])
    if n is None or len(rest) <= n:
        return rest, None
    chosen = rest[:n]
    return chosen, chosen[-1] if chosen else None


def link(path: str, n: int, last: str) -> str:
    """``Link`` to the next page, as the distribution spec writes it."""
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'
