"""Pure parsers for the two range headers the registry reads.

``Range: bytes=500-1499`` on a blob GET, and ``Content-Range: 0-1023`` on an upload chunk.
Numbers are ASCII digits, and one too long to matter is capped (``numbers.capped``).
"""

from __future__ import annotations

import re

from mdl.registry.numbers import capped

_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
_CONTENT_RANGE = re.compile(r"(?:bytes )?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?")


class Unsatisfiable(Exception):
    """A well-formed single range that selects no byte of the content."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` bytes a ``Range`` header selects from ``size`` bytes.

    None means serve everything (no header, not a single ``bytes=`` range: RFC 9110 lets a
    server ignore what it does not support). ``bytes=500-0`` or a start past the end raise
    Unsatisfiable. ``bytes=2000-5000`` of 2048 bytes is ``(2000, 2047)``; ``bytes=-500`` is the
    last 500.
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first_text, last_text = match.groups()
    if not first_text:
        suffix = capped(last_text)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(size - suffix, 0), size - 1
    first = capped(first_text)
    last = capped(last_text) if last_text else size - 1
    if first > last or first >= size:
        raise Unsatisfiable(header)
    return first, min(last, size - 1)


def content_range(header: str) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` of an upload chunk's ``Content-Range``; None if malformed."""
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if not match:
        return None
    first, last = capped(match.group(1)), capped(match.group(2))
    return (first, last) if first <= last else None


def upload_range(size: int) -> str:
    """The ``Range`` header of an upload holding ``size`` bytes: ``0-<last byte>``.

    An empty upload reports ``0-0``, as distribution does and clients expect.
    """
    return f"0-{max(size - 1, 0)}"
