"""Stop sequences over streamed text. Pure.

Text that might be the start of a stop sequence is held back until the next piece decides it,
so a stop sequence never reaches the client, even split across tokens:

    >>> scanner = StopScanner(("<|im_end|>",))
    >>> scanner.feed("Hello<|im"), scanner.feed("_end|> more"), scanner.stopped
    ('Hello', '', True)
"""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of ``held + text`` that is safe to emit now; sets ``stopped`` at a stop."""
        if self.stopped:
            return ""
        pending = self.held + text
        if not self.stops:
            self.held = ""
            return pending
        cut = min((i for i in (pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self.held = ""
            return pending[:cut]
        keep = max((_overlap(pending, s) for s in self.stops), default=0)
        self.held = pending[len(pending) - keep :] if keep else ""
        return pending[: len(pending) - keep]

    def flush(self) -> str:
        """What is still held when generation ends without a stop."""
        held, self.held = self.held, ""
        return "" if self.stopped else held


def _overlap(text: str, stop: str) -> int:
    """The longest suffix of ``text`` that is a proper prefix of ``stop``."""
    for size in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:size]):
            return size
    return 0
