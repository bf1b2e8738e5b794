"""The CLI's only voice: results as text or ``--json``, errors on stderr, progress when a TTY.

It is also the only module that imports rich.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ProgressCallback = Callable[[str, int, int], None]
"""(label, bytes just done, total bytes) — what long work reports as it goes."""


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def result(obj: Any, as_json: bool, text: Callable[[], None]) -> None:
    """Print a command's result: the JSON document, or whatever ``text`` prints."""
    if as_json:
        emit_json(obj)
    else:
        text()


def line(message: str) -> None:
    out.print(message, markup=False)


def lines(messages: Iterable[str]) -> None:
    for message in messages:
        line(message)


def error(message: str) -> None:
    err.print(f"Error: {message}", markup=False, style="red" if err.is_terminal else None)


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, no_wrap=True)
    for row in rows:
        grid.add_row(*row)
    out.print(grid)


@contextmanager
def progress(enabled: bool = True) -> Iterator[ProgressCallback]:
    """A byte progress bar on stderr, one row per label; silent when stderr is not a TTY."""
    if not (enabled and err.is_terminal):
        yield lambda label, done, total: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def advance(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], advance=done)

    with bar:
        yield advance


def human_size(size: int) -> str:
    """Decimal units, as Ollama and docker print sizes."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
