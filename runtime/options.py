"""Model options: a request's ``options`` over the model's ``params.json`` over the defaults. Pure.

Names and types are Ollama's (``api.Options`` and ``api.Runner``). Runner options (``num_ctx``,
``num_batch``, ``num_thread``, ``use_mmap``) fix how the model is loaded; the rest shape one
answer. Names Ollama accepts but no longer uses (``numa``, ``low_vram``, ``mirostat``…, see
``IGNORED``) are accepted and ignored. An unknown name, a value of the wrong type or one out of
range is a BadRequest naming it: Ollama would log and drop unknown names, but silently
ignoring a misspelt ``temprature`` answers with the wrong settings.

Ranges are what llama.cpp's C types hold (``int32_t``, a ``uint32_t`` seed, finite floats), so no
value wraps on its way through ctypes; ``num_ctx`` is cut to the model's trained context length
(or to ``MDL_MAX_CONTEXT``), and ``num_batch`` to ``num_ctx``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from mdl.runtime.errors import BadRequest
from mdl.runtime.runner import Sampling
from mdl.spec.footprint import context_of

INT, FLOAT, BOOL, STRINGS = "integer", "number", "boolean", "list of strings"
BIAS = "object of token ids to numbers"
MAX_BIASES = 1024
"""Most ``logit_bias`` entries one request may carry."""

TYPES: dict[str, str] = {
    "num_ctx": INT,
    "num_batch": INT,
    "num_gpu": INT,
    "main_gpu": INT,
    "num_thread": INT,
    "use_mmap": BOOL,
    "num_keep": INT,
    "seed": INT,
    "num_predict": INT,
    "top_k": INT,
    "top_p": FLOAT,
    "min_p": FLOAT,
    "typical_p": FLOAT,
    "repeat_last_n": INT,
    "temperature": FLOAT,
    "repeat_penalty": FLOAT,
    "presence_penalty": FLOAT,
    "frequency_penalty": FLOAT,
    "mirostat": INT,
    "mirostat_tau": FLOAT,
    "mirostat_eta": FLOAT,
    "stop": STRINGS,
    "logit_bias": BIAS,
}
IGNORED = frozenset(
    {
        "numa", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
        "embedding_only", "penalize_newline", "tfs_z", "num_gqa", "rope_frequency_base",
        "rope_frequency_scale",
    }
)  # fmt: skip
_NON_NEGATIVE = ("temperature", "top_p", "min_p")
INT32 = 2**31 - 1
MAX_THREADS = 1024
FLOAT_MAX = 3.4028234663852886e38
"""The largest finite float32: llama.cpp's sampling parameters are C floats."""
RANGES: dict[str, tuple[int, int]] = {
    "num_ctx": (1, INT32),
    "num_batch": (1, INT32),
    "num_gpu": (-1, INT32),
    "main_gpu": (0, INT32),
    "num_thread": (0, MAX_THREADS),
    "num_keep": (-1, INT32),
    "seed": (-(2**31), 2**32 - 1),
    "num_predict": (-2, INT32),
    "top_k": (0, INT32),
    "repeat_last_n": (-1, INT32),
    "mirostat": (0, 2),
}
"""Inclusive bounds of the integer options (a negative seed means a random one)."""
_SAMPLING = {f.name for f in fields(Sampling)}

Values = dict[str, Any]


@dataclass(frozen=True)
class RunnerOptions:
    num_ctx: int
    num_batch: int
    num_thread: int
    use_mmap: bool


def check_options(raw: Any, where: str = "options") -> Values:
    """Validate a JSON object of options; the typed values, nulls and ignored names left out."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise BadRequest(f"{where} must be a JSON object")
    values: Values = {}
    for name, value in raw.items():
        if value is None or name in IGNORED:
            continue
        kind = TYPES.get(name)
        if kind is None:
            raise BadRequest(f'{where}: unknown option "{name}"')
        values[name] = _typed(name, kind, value, where)
    for name in _NON_NEGATIVE:
        if values.get(name, 0) < 0:
            raise BadRequest(f"{where}: {name} must not be negative")
    for name, (low, high) in RANGES.items():
        if name in values and not low <= values[name] <= high:
            raise BadRequest(f"{where}: {name} must be from {low} to {high}")
    return values


def runner_options(
    values: Values, trained_ctx: int | None, cores: int, max_ctx: int | None = None
) -> RunnerOptions:
    """``num_ctx`` and ``num_batch`` as ``footprint.context_of`` sets them (the figure variant
    annotations record); threads default to the machine's cores."""
    num_ctx, num_batch = context_of(values, trained_ctx, max_ctx)
    return RunnerOptions(
        num_ctx=num_ctx,
        num_batch=num_batch,
        num_thread=values.get("num_thread") or cores,
        use_mmap=values.get("use_mmap", True),
    )


def sampling(values: Values) -> Sampling:
    chosen = {k: v for k, v in values.items() if k in _SAMPLING}
    if "stop" in chosen:
        chosen["stop"] = tuple(chosen["stop"])
    return Sampling(**chosen)


def _typed(name: str, kind: str, value: Any, where: str) -> Any:
    wrong = BadRequest(f'{where}: option "{name}" must be a {kind}, not {_json_type(value)}')
    if kind == BOOL:
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind == BIAS:
        return _biases(value, where)
    if kind == STRINGS:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
            raise wrong
        return items
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f'{where}: option "{name}" must be a finite number')
    if kind == INT:
        if isinstance(value, float) and not value.is_integer():
            raise wrong
        return int(value)
    if abs(value) > FLOAT_MAX:
        raise BadRequest(f'{where}: option "{name}" is out of range')
    return float(value)


def _biases(value: Any, where: str) -> tuple[tuple[int, float], ...]:
    """OpenAI's ``logit_bias``: token id (a JSON key) -> a bias from -100 to 100."""
    if not isinstance(value, Mapping):
        raise BadRequest(f'{where}: option "logit_bias" must be an {BIAS}')
    if len(value) > MAX_BIASES:
        raise BadRequest(f"{where}: logit_bias has more than {MAX_BIASES} entries")
    pairs = []
    for token, bias in value.items():
        if not str(token).isdigit() or int(token) > INT32:
            raise BadRequest(f"{where}: logit_bias key {str(token)[:20]!r} is not a token id")
        if isinstance(bias, bool) or not isinstance(bias, int | float) or not -100 <= bias <= 100:
            raise BadRequest(f"{where}: logit_bias values must be numbers from -100 to 100")
        pairs.append((int(token), float(bias)))
    return tuple(sorted(pairs))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"
