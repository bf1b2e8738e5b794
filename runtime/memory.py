"""How much memory the machine offers (the estimate of what a model takes is
``mdl.spec.footprint``)."""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def available_bytes(meminfo: Path = MEMINFO) -> int | None:
    """MemAvailable from /proc/meminfo, or None where there is no such file."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "MemAvailable":
            return int(value.split()[0]) * 1024
    return None


def gib(size: int) -> str:
    """A byte count for a message: ``1.5 GiB``."""
    return f"{size / 2**30:.1f} GiB"
