"""Tool calls in a model's output, in the forms chat templates ask for. Pure.

While the answer could still be a tool call (it opens with ``{``, ``[``, ``<tool_call>``,
``[TOOL_CALLS]``, ``<|python_tag|>`` or a json code fence) the text is held back; at the end it
is parsed into calls to the offered functions (``{"name", "arguments"|"parameters"}``, one, a
list, or one per line). Text that is not a call is released as ordinary content.

    >>> parser = ToolCallParser({"get_weather"})
    >>> parser.feed('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}')
    ''
    >>> parser.finish()
    ('', (ToolCall(name='get_weather', arguments={'city': 'Paris'}, id='call_0'),))
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any

from mdl.runtime.messages import ToolCall

MARKERS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "```json", "```", "{", "[")
_WRAPPERS = re.compile(r"</?tool_call>|\[TOOL_CALLS\]|<\|python_tag\|>|```(?:json)?|<\|eom_id\|>")


class ToolCallParser:
    def __init__(self, names: Collection[str]) -> None:
        self.names = set(names)
        self.buffer = ""
        self.holding = bool(self.names)

    def feed(self, text: str) -> str:
        """The content that can be shown now ("" while it may still be a tool call)."""
        if not self.holding:
            return text
        self.buffer += text
        start = self.buffer.lstrip()
        if not start or any(start.startswith(m) or m.startswith(start) for m in MARKERS):
            return ""
        self.holding = False
        released, self.buffer = self.buffer, ""
        return released

    def finish(self) -> tuple[str, tuple[ToolCall, ...]]:
        """The rest of the content and the calls found (content is "" when there are calls)."""
        text, self.buffer = self.buffer, ""
        calls = parse_tool_calls(text, self.names) if text else ()
        return ("", calls) if calls else (text, ())


def parse_tool_calls(text: str, names: Collection[str]) -> tuple[ToolCall, ...]:
    body = _WRAPPERS.sub("\n", text).strip()
    found: list[Any] = []
    decoder = json.JSONDecoder()
    pos = 0
    while pos < len(body):
        if body[pos] not in "{[":
            pos += 1
            continue
        try:
            value, end = decoder.raw_decode(body, pos)
        except ValueError:
            pos += 1
            continue
        found.extend(value if isinstance(value, list) else [value])
        pos = end
    calls: list[ToolCall] = []
    for item in found:
        call = _call(item, names, len(calls))
        if call is None:
            return ()
        calls.append(call)
    return tuple(calls)


def _call(item: Any, names: Collection[str], index: int) -> ToolCall | None:
    if not isinstance(item, dict):
        return None
    nested = item.get("function")
    function: dict[str, Any] = nested if isinstance(nested, dict) else item
    name = function.get("name") or item.get("tool_name")
    arguments = function.get("arguments", function.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(name, str) or name not in names or not isinstance(arguments, dict):
        return None
    return ToolCall(name, arguments, f"call_{index}")
