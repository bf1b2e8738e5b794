"""How much memory the machine offers (the estimate of what a model takes is
``mdl.spec.footprint``)."""

from __future__ import annotations

from mdl.store.variants import available_bytes

__all__ = ["available_bytes", "gib"]


def gib(size: int) -> str:
    """A byte count for a message: ``1.5 GiB``."""
    return f"{size / 2**30:.1f} GiB"
