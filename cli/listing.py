"""How ``mdl list`` and ``mdl ps`` read: columns as ``docker images`` and ``ollama list`` print
them, sizes and times in Ollama's human units. Pure: the commands print the lines.

A column is as wide as its widest cell, so a name is never cut, on a terminal or in a pipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

GAP = "   "
_UNITS = ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "KB"))


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns three spaces apart; no cell is ever shortened."""
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=True)]
    return [
        GAP.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (columns, *rows)
    ]


def human_bytes(size: int) -> str:
    """Ollama's ``format.HumanBytes``: decimal units, whole numbers from 10 up (``98 MB``,
    ``1.5 GB``, ``512 B``)."""
    for scale, unit in _UNITS:
        if size >= scale:
            value = size / scale
            if value >= 10 or value.is_integer():
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{size} B"


def human_time(moment: datetime, now: datetime) -> str:
    """Ollama's ``format.HumanTime``: ``2 minutes ago``, ``4 minutes from now``, and
    ``Forever`` more than 20 years ahead (a model kept loaded for good)."""
    seconds = (now - moment).total_seconds()
    if seconds < -20 * 365 * 86400:
        return "Forever"
    if seconds < 0:
        return f"{_duration(-seconds)} from now"
    return f"{_duration(seconds)} ago"


def _duration(seconds: float) -> str:
    """go-units' ``HumanDuration``, which Ollama's uses."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = whole // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)  # Go's math.Round, not Python's round-half-even
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"
