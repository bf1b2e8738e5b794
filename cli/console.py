"""The CLI's only voice: results as text or ``--json``, errors on stderr, progress when a TTY.

It is also the only module that imports rich. Everything it prints as text passes through
``printable``: file names from a registry's annotations and a registry's error messages reach
the terminal here, and must not carry escape sequences or other control characters.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@cache
def stderr() -> Console:
    """The console for progress and coloured messages on a terminal; rich is imported on first
    use, since it costs every command about 30 ms."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


ProgressCallback = Callable[[str, int, int], None]
"""(label, bytes just done, total bytes) — what long work reports as it goes."""


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls (ESC among them), DEL, and the bidirectional marks and overrides."""


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` without control characters; newlines and tabs stay when ``lines``, else they
    become spaces."""

    def replace(match: re.Match[str]) -> str:
        char = match.group()
        if char in "\n\t":
            return char if lines else " "
        return ""

    return _CONTROL.sub(replace, text)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def result(obj: Any, as_json: bool, text: Callable[[], None]) -> None:
    """Print a command's result: the JSON document, or whatever ``text`` prints."""
    if as_json:
        emit_json(obj)
    else:
        text()


def line(message: str) -> None:
    sys.stdout.write(printable(message, lines=True) + "\n")


def lines(messages: Iterable[str]) -> None:
    for message in messages:
        line(message)


def warning(message: str) -> None:
    _to_stderr(f"Warning: {printable(message)}", "yellow")


def error(message: str) -> None:
    _to_stderr(f"Error: {printable(message)}", "red")


def _to_stderr(text: str, colour: str) -> None:
    """Coloured on a terminal (through rich), plain elsewhere (without importing rich)."""
    if sys.stderr.isatty():
        stderr().print(text, markup=False, style=colour)
    else:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


@contextmanager
def progress(enabled: bool = True) -> Iterator[ProgressCallback]:
    """Byte progress on stderr: a bar per label (layer) and an overall bar on a TTY; elsewhere
    one plain line as each label completes. ``enabled=False`` (``--quiet``, ``--json``) is
    silent."""
    if not enabled:
        yield lambda label, done, total: None
        return
    if not stderr().is_terminal:
        yield _plain_progress()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        transient=True,
    )
    tasks: dict[str, Any] = {}
    overall = bar.add_task("total", total=0)

    def advance(label: str, done: int, total: int) -> None:
        label = printable(label)
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
            bar.update(overall, total=(bar.tasks[overall].total or 0) + total)
        bar.update(tasks[label], advance=done)
        bar.update(overall, advance=done)

    with bar:
        yield advance


def _plain_progress() -> ProgressCallback:
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def advance(label: str, done: int, total: int) -> None:
        with lock:
            before = seen.get(label, 0)
            seen[label] = before + done
            finished = before < total <= seen[label]
        if finished:
            stderr().print(
                f"{printable(label)}: {human_size(total)} done", markup=False, highlight=False
            )

    return advance


def human_size(size: int) -> str:
    """Decimal units, as Ollama and docker print sizes."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
