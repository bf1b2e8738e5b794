"""Jinja chat templates as GGUF files carry them (``tokenizer.chat_template``, Hugging Face form).

Rendered in a sandbox the way ``transformers`` renders them: ``trim_blocks`` and
``lstrip_blocks``, ``raise_exception``, ``strftime_now``, a ``tojson`` that keeps non-ASCII text,
messages and tools in OpenAI's shape, and ``add_generation_prompt``. A leading BOS the template
writes is dropped, because tokenizing the prompt adds it.

Beyond the sandbox, a render is bounded (``budget``): one step per template line executed, the
output counted, ``range`` at most 100,000 items (the sandbox's), and no operation may build a
string or list past the output limit or pad to a width past ``MAX_WIDTH`` (``*``, ``+``, ``%``,
``~`` into a namespace, macro arguments, ``center``/``ljust``/``format``… as methods or filters).
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import jinja2
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from mdl.runtime.errors import TemplateError, TemplateRefused
from mdl.runtime.messages import Message, Tool
from mdl.runtime.templates.budget import MAX_OUTPUT, MAX_WIDTH, Budget, traced

_CODE_FILE = "<template>"
"""The file name Jinja gives the Python code it compiles a template into."""
_WIDTHS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "indent", "wordwrap",
                     "format", "format_map"})  # fmt: skip
"""String methods and filters whose integer arguments are widths: at most MAX_WIDTH."""
_FORMATS = frozenset({"format", "format_map", "%"})
_BIG_NUMBER = re.compile(r"\d{7,}|%[^a-zA-Z%]*\*")
"""In a format string: a width or precision of 7 digits or more, or one taken from the args."""


def _raise(message: str) -> NoReturn:
    raise TemplateRefused(f"chat template: {message}")


def _weight(value: Any) -> int:
    """About how many characters a value holds: a string's length; a list's length plus that
    of the strings in it (a list of one big string repeated is big too)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return len(value) + sum(len(item) for item in value if isinstance(item, str))
    return 0


def _check_size(size: int) -> None:
    if size > MAX_OUTPUT:
        raise TemplateError(f"chat template: a value larger than {MAX_OUTPUT} characters")


def _bounded(value: Any) -> Any:
    _check_size(_weight(value))
    return value


def _check_widths(name: str, values: Sequence[Any]) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
            raise TemplateError(f"chat template: {name}: {value} is too large")
        if isinstance(value, str) and name in _FORMATS and _BIG_NUMBER.search(value):
            raise TemplateError(f"chat template: {name}: width or precision too large")


def _replaced_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(old, str) or not isinstance(new, str):
        return len(text)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _string_method(text: str, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """A method of a string, its result's size checked before it is built."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name in _WIDTHS:
            _check_widths(name, [text, *args, *kwargs.values()])
        elif name == "replace" and args:
            _check_size(_replaced_size(text, *args[:3]))
        elif name == "join" and args:
            items = list(args[0])
            _check_size(_weight(items) + len(text) * len(items))
            args = (items, *args[1:])
        return _bounded(method(*args, **kwargs))

    return bounded


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter with its width arguments and its input checked (Jinja's ``pass_*`` marker,
    kept by ``wraps``, still hands it its context first)."""

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = [*args, *kwargs.values()]
        if name in _WIDTHS:
            _check_widths(name, values)
        strings = [v for v in values if isinstance(v, str)]
        if name == "replace" and len(strings) >= 3:
            _check_size(_replaced_size(*strings[:3]))
        if name == "join":
            items = [v for v in values if isinstance(v, list | tuple)]
            separator = max((len(v) for v in strings), default=0)
            _check_size(sum(_weight(v) + separator * len(v) for v in items))
        return _bounded(function(*args, **kwargs))

    return bounded


class _Namespace(Namespace):
    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, _bounded(value))


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for value, count in ((left, right), (right, left)):
                if isinstance(count, int) and not isinstance(count, bool):
                    _check_size(_weight(value) * count)
        elif operator == "**" and isinstance(right, int) and abs(right) > 4096:
            raise TemplateError("chat template: ** exponent too large")
        elif operator == "%" and isinstance(left, str):
            _check_widths("%", [left, *(right if isinstance(right, tuple) else [right])])
        elif operator == "+":
            _check_size(_weight(left) + _weight(right))
        return _bounded(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):  # macro arguments, namespace(...)
            _bounded(value)
        return _bounded(super().call(context, obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        value = super().getattr(obj, attribute)
        if isinstance(obj, str) and callable(value) and attribute in (*_WIDTHS, "replace", "join"):
            return _string_method(obj, attribute, value)
        return value


def _tojson(
    value: Any, indent: int | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    return json.dumps(
        value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


class JinjaChatTemplate:
    def __init__(self, source: str, bos_token: str = "", eos_token: str = "") -> None:
        env = _BoundedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        for name in ("center", "indent", "wordwrap", "format", "replace", "join"):
            env.filters[name] = _bounded_filter(name, env.filters[name])
        env.filters["tojson"] = _tojson
        env.globals["namespace"] = _Namespace
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = _strftime_now
        try:
            self.template = env.from_string(source)
        except (jinja2.TemplateError, RecursionError, MemoryError, ValueError) as exc:
            raise TemplateError(f"chat template does not parse: {exc}") from exc
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.supports_tools = "tools" in source
        self.supports_insert = False

    def render(
        self, messages: Sequence[Message], tools: Sequence[Tool] = (), budget: Budget | None = None
    ) -> str:
        bounds = budget or Budget()
        context = {
            "messages": [_message(m) for m in messages],
            "tools": [t.to_json() for t in tools] or None,
            "add_generation_prompt": True,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }

        def render() -> str:
            out = []
            for chunk in self.template.generate(context):
                bounds.emit(len(chunk))
                out.append(chunk)
            return "".join(out)

        try:
            text = traced(bounds, _CODE_FILE, render)
        except TemplateError:
            raise
        except Exception as exc:  # any error a template's own code raises
            raise TemplateError(f"chat template failed: {exc}") from exc
        if self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token) :]
        return text

    def render_insert(self, prompt: str, suffix: str, budget: Budget | None = None) -> str:
        raise TemplateError("a Jinja chat template has no fill-in-the-middle form")


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": dict(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_name:
        out["name"] = message.tool_name
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out
