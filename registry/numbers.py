"""Decimal numbers from headers and query strings, read without surprises (pure).

Only ASCII digits count (``str.isdigit`` also takes ``²``, which ``int`` refuses), and a number
too long to matter is capped instead of converted (``int`` refuses more than 4300 digits).
"""

from __future__ import annotations

import re

CAP = 10**18
"""Larger than any size or offset the registry handles; longer numbers read as this."""
_DIGITS = re.compile(r"[0-9]+")


def decimal(text: str) -> int | None:
    """The value of ``text`` (ASCII digits, capped at CAP); None if it is anything else."""
    return capped(text) if _DIGITS.fullmatch(text) else None


def capped(digits: str) -> int:
    """The value of a string of ASCII digits, at most CAP."""
    significant = digits.lstrip("0")
    return CAP if len(significant) > len(str(CAP)) else min(int(significant or "0"), CAP)
