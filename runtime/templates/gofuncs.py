"""The functions Go templates may call: Go's builtins and Ollama's additions. Pure.

``and``/``or`` get their arguments as thunks, so they stop at the first deciding one, as Go's do.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mdl.runtime.errors import TemplateError
from mdl.runtime.templates.budget import MAX_WIDTH
from mdl.runtime.templates.govalues import GoJSON, go_json, go_print, truth


def call(name: str, thunks: list[Callable[[], Any]]) -> Any:
    """Call function ``name``; each argument is a thunk (evaluated when needed)."""
    if name in ("and", "or"):
        if not thunks:
            raise TemplateError(f"template: wrong number of args for {name}")
        value = None
        for thunk in thunks:
            value = thunk()
            if truth(value) != (name == "and"):
                return value
        return value
    args = [thunk() for thunk in thunks]
    try:
        return _FUNCS[name](*args)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TemplateError(f"template: error calling {name}: {exc}") from exc


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, GoJSON) else value


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("template: missing argument for comparison")
    return any(_plain(first) == _plain(other) for other in others)


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        try:
            return op(_plain(a), _plain(b))
        except TypeError as exc:
            raise TemplateError(f"template: incompatible types for comparison: {exc}") from exc

    return compare


def _len(value: Any) -> int:
    value = _plain(value)
    if isinstance(value, str | Sequence | Mapping):
        return len(value)
    raise TemplateError(f"template: len of {go_print(value)!r}")


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        value = _plain(value)
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, Sequence) and isinstance(key, int):
            if not 0 <= key < len(value):
                raise TemplateError(f"template: index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError(f"template: can't index item of type {type(value).__name__}")
    return value


def _slice(value: Any, *bounds: int) -> Any:
    value = _plain(value)
    if not isinstance(value, str | Sequence) or len(bounds) > 2:
        raise TemplateError("template: can't slice item")
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else len(value)
    if not 0 <= start <= end <= len(value):
        raise TemplateError(f"template: slice index out of range: {start}:{end}")
    return value[start:end]


def _sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_print(arg)
    return out


_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([vsdqfgtx%])")


def _sprintf(fmt: str, *args: Any) -> str:
    values = list(args)

    def verb(match: re.Match[str]) -> str:
        flags, width, precision, kind = match.groups()
        if kind == "%":
            return "%"
        bad = ""  # as Go's fmt: say so, then format the value without that width or precision
        if _too_large(width):
            bad, width = bad + "%!(BADWIDTH)", ""
        if _too_large(precision):
            bad, precision = bad + "%!(BADPREC)", None
        if not values:
            return f"{bad}%!{kind}(MISSING)"
        value = values.pop(0)
        if kind in ("v", "s", "t"):
            text = go_print(value)
        elif kind == "q":
            text = json.dumps(go_print(value), ensure_ascii=False)
        elif kind == "d":
            text = str(int(value))
        elif kind == "x":
            text = go_print(value).encode().hex() if isinstance(value, str) else f"{int(value):x}"
        else:
            text = format(float(value), f".{precision or 6}{'f' if kind == 'f' else 'g'}")
        padded = text.ljust(int(width)) if "-" in flags and width else text.rjust(int(width or 0))
        return bad + padded

    return _VERB.sub(verb, fmt)


def _too_large(number: str | None) -> bool:
    """Go's fmt refuses widths and precisions above 1e6 (``%!(BADWIDTH)``)."""
    return number is not None and number != "" and (len(number) > 7 or int(number) > MAX_WIDTH)


def _date(days: int) -> Callable[..., str]:
    def date(*_format: str) -> str:
        return (datetime.date.today() + datetime.timedelta(days=days)).isoformat()

    return date


_FUNCS: dict[str, Callable[..., Any]] = {
    "not": lambda value: not truth(value),
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered(lambda a, b: a < b),
    "le": _ordered(lambda a, b: a <= b),
    "gt": _ordered(lambda a, b: a > b),
    "ge": _ordered(lambda a, b: a >= b),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": _sprint,
    "printf": _sprintf,
    "println": lambda *args: " ".join(go_print(a) for a in args) + "\n",
    "json": go_json,
    "currentDate": _date(0),
    "yesterdayDate": _date(-1),
}

FUNCTIONS = frozenset({"and", "or", *_FUNCS})
