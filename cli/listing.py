"""How ``mdl list`` and ``mdl ps`` read: columns as ``docker images`` and ``ollama list`` print
them, sizes and times in Ollama's human units. Pure: the commands print the lines.

A column is as wide as its widest cell, so a name is never cut, on a terminal or in a pipe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

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


def variant_count(total: int, present: int) -> str:
    """An index's VARIANTS cell: ``3``, or ``1 of 3 pulled`` when some were left on the registry."""
    return str(total) if present == total else f"{present} of {total} pulled"


def variant_rows(variants: Sequence[Mapping[str, Any]], now: datetime) -> list[list[str]]:
    """The rows under an index for ``--all-variants``, as ``docker images --tree`` draws them:
    ``├─ Q4_K_M``, the last ``└─ F16``; a variant not pulled has no size or time."""
    rows = []
    for i, variant in enumerate(variants):
        branch = "└─ " if i == len(variants) - 1 else "├─ "
        present = variant["present"]
        modified = variant.get("modified_at")
        rows.append(
            [
                branch + variant["quantization"],
                variant["digest"].removeprefix("sha256:")[:12],
                human_bytes(variant["size"]) if present else "-",
                human_time(datetime.fromisoformat(modified), now) if modified else "-",
                f"needs {human_bytes(variant['memory'])}" + ("" if present else ", not pulled"),
            ]
        )
    return rows
