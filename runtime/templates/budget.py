"""How much work rendering one prompt may do: steps, output and wall time.

A template is code, and both a request (``template`` in ``/api/generate``) and a pulled model
bring their own. Each render gets one ``Budget``: the Go engine counts a step per node and per
``range`` iteration, the Jinja engine a step per executed template line (``traced``), and both
count what they write. Past any limit the render stops with a TemplateError in the rendering
thread itself, so no runaway template keeps a thread busy.

The limits sit far above what chat templates need (a 1,000-message conversation through a
ChatML template takes about 6,000 steps in Go and 4,000 lines in Jinja).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from mdl.runtime.errors import TemplateError

MAX_STEPS = 1_000_000
MAX_OUTPUT = 32 << 20
"""Characters a render may write; as much as the largest request body."""
SECONDS = 10.0
MAX_WIDTH = 1_000_000
"""The largest width or precision a format may ask for (Go's fmt refuses larger ones too)."""
_CLOCK_EVERY = 1024

T = TypeVar("T")


class Budget:
    def __init__(
        self, steps: int = MAX_STEPS, output: int = MAX_OUTPUT, seconds: float = SECONDS
    ) -> None:
        self.steps = steps
        self.output = output
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self._ticks = 0

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise TemplateError(f"template: rendering took more than {MAX_STEPS} steps")
        self._ticks += 1
        if self._ticks % _CLOCK_EVERY == 0 and time.monotonic() > self.deadline:
            raise TemplateError(f"template: rendering took more than {self.seconds:g} s")

    def emit(self, size: int) -> None:
        self.output -= size
        if self.output < 0:
            raise TemplateError(f"template: the output is larger than {MAX_OUTPUT} characters")


def traced(budget: Budget, code_file: str, work: Callable[[], T]) -> T:
    """Run ``work`` in this thread, one budget step per line executed in code from
    ``code_file`` (Jinja compiles templates into Python code named ``<template>``)."""

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            budget.step()
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == code_file else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        return work()
    finally:
        sys.settrace(previous)
