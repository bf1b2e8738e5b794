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
_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "format", "format_map",
                      "replace", "join"})  # fmt: skip
"""String methods (and filters) whose result can be far larger than their operands."""
_FORMATS = ("format", "format_map", "%")
_BIG_NUMBER = re.compile(r"\d{7,}|%[^a-zA-Z%]*\*")


def _raise(message: str) -> NoReturn:
    raise TemplateRefused(f"chat template: {message}")


def _bounded(value: Any) -> Any:
    if isinstance(value, str | list | tuple):
        _check_size(len(value))
    return value


def _check_size(size: int) -> None:
    if size > MAX_OUTPUT:
        raise TemplateError(f"chat template: a value larger than {MAX_OUTPUT} items")


def _check_arguments(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    """Refuse what would pad or multiply a string past the limits, before it is built."""
    values = [*args, *kwargs.values()]
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
            raise TemplateError(f"chat template: {name}: {value} is too large")
        if isinstance(value, str) and name in _FORMATS and _BIG_NUMBER.search(value):
            raise TemplateError(f"chat template: {name}: width or precision too large")
        _bounded(value)
    strings = [v for v in values if isinstance(v, str)]
    if name in ("replace", "join") and sum(map(len, strings)) ** 2 > MAX_OUTPUT * 64:
        raise TemplateError(f"chat template: {name}: operands too large")


def _guard(name: str, function: Callable[..., Any], owner: str = "") -> Callable[..., Any]:
    """``function`` (a filter, or a method of the string ``owner``) with its arguments checked."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        _check_arguments(name, [owner, *args], kwargs)
        return _bounded(function(*args, **kwargs))

    guarded.__name__ = name
    return guarded


class _Namespace(Namespace):
    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, _bounded(value))


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for value, count in ((left, right), (right, left)):
                if isinstance(value, str | list | tuple) and isinstance(count, int):
                    _check_size(len(value) * count)
        elif operator == "**" and isinstance(right, int) and abs(right) > 4096:
            raise TemplateError("chat template: ** exponent too large")
        elif operator == "%" and isinstance(left, str):
            _check_arguments("%", [left, *(right if isinstance(right, tuple) else [right])], {})
        elif operator == "+" and isinstance(left, str | list | tuple) and hasattr(right, "__len__"):
            _check_size(len(left) + len(right))
        return _bounded(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _check_arguments(getattr(obj, "__name__", "call"), args, kwargs)
        return _bounded(super().call(context, obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        value = super().getattr(obj, attribute)
        if isinstance(obj, str) and attribute in _PADDING and callable(value):
            return _guard(attribute, value, obj)
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
        for name in ("center", "indent", "wordwrap", "format", "replace", "join", "truncate"):
            env.filters[name] = _guard(name, env.filters[name])
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
