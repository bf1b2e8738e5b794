"""Go template values: how Python data stands for Go's, prints, and tests true. Pure.

Dicts are Go maps or structs (a missing key is the zero value, as Ollama's
``missingkey=zero``), lists are slices, and ``GoJSON`` wraps the Ollama types whose ``String()``
prints JSON (tools, tool-call arguments). A missing value prints as "" (Go prints
``<no value>``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GoJSON:
    """A value whose Go type has a ``String()`` that prints JSON: fields of ``value`` are read
    by their Go names, printing and ``json`` give ``data`` as JSON."""

    value: Any
    data: Any


def go_json(value: Any) -> str:
    """``json.Marshal``: compact, with ``<``, ``>`` and ``&`` escaped as Go escapes them."""
    if isinstance(value, GoJSON):
        value = value.data
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_print(value: Any) -> str:
    """How ``{{ value }}`` prints, as Go's fmt prints it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, GoJSON):
        return go_json(value.data)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_print(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, Sequence):
        return "[" + " ".join(go_print(item) for item in value) + "]"
    return str(value)


def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, slices and maps are false."""
    if isinstance(value, GoJSON):
        value = value.value
    if value is None:
        return False
    if isinstance(value, bool | int | float | str | Sequence | Mapping):
        return bool(value)
    return True
