"""Modelfile PARAMETERs: the names Ollama accepts, their types, and the params layer it writes.

The table follows current Ollama: ``api.Options`` and ``api.Runner`` (``api/types.go``) give the
names and types, ``parser.deprecatedParameters`` the names the client accepts but drops with a
warning, and the create handler (``server/create.go``) refuses ``typical_p``. Anything else,
including names Ollama once had (``tfs_z``, ``numa``, ``num_gqa``), is an unknown parameter, and
names are case-sensitive.

Values are typed as ``api.FormatParams`` does (``strconv.ParseInt``/``ParseFloat``/``ParseBool``).
The params layer then takes a detour that fixes its bytes: the client sends the typed values as
JSON (a float32 as its shortest decimal), the server decodes them into ``map[string]any`` (every
number becomes a float64) and writes ``json.NewEncoder(w).Encode(params)``. That gives sorted keys,
no spaces, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, other text as raw UTF-8, numbers as Go
prints a float64 (``1`` not ``1.0``, exponent only below 1e-6 or from 1e21) and, because it is
``Encoder.Encode`` and not ``json.Marshal``, a trailing newline. A float parameter is therefore
kept here as the float64 nearest the float32's shortest decimal (``0.7``, not ``0.699999988``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import NoReturn, TypeAlias

from mdl.spec.errors import MdlError

ParamValue: TypeAlias = bool | int | float | str
JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None


class ParamKind(Enum):
    INT = "integer"
    FLOAT = "float"
    BOOL = "boolean"
    STRINGS = "string"  # repeatable; the params layer holds a list


PARAMETERS: dict[str, ParamKind] = {
    # api.Runner: read when the model is loaded
    "num_ctx": ParamKind.INT,
    "num_batch": ParamKind.INT,
    "num_gpu": ParamKind.INT,
    "main_gpu": ParamKind.INT,
    "use_mmap": ParamKind.BOOL,
    "num_thread": ParamKind.INT,
    # api.Options: read on every request
    "num_keep": ParamKind.INT,
    "seed": ParamKind.INT,
    "num_predict": ParamKind.INT,
    "top_k": ParamKind.INT,
    "top_p": ParamKind.FLOAT,
    "min_p": ParamKind.FLOAT,
    "repeat_last_n": ParamKind.INT,
    "temperature": ParamKind.FLOAT,
    "repeat_penalty": ParamKind.FLOAT,
    "presence_penalty": ParamKind.FLOAT,
    "frequency_penalty": ParamKind.FLOAT,
    "stop": ParamKind.STRINGS,
}
DEPRECATED_PARAMETERS = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    }
)
REJECTED_PARAMETERS = {
    "typical_p": "typical_p is deprecated and cannot be set as a model parameter; "
    "pass it as a request option instead",
}

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_BOOLS = _TRUE | {"0", "f", "F", "FALSE", "false", "False"}
_INT = re.compile(r"([+-]?)0*([0-9]{1,19})")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(r"([+-]?)0[xX](?=\.?[0-9a-fA-F])([0-9a-fA-F]*)\.?([0-9a-fA-F]*)[pP]([+-]?[0-9]+)")
_FLOAT32_MAX = Fraction((2**24 - 1) * 2**104)
_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_JSON_SPECIAL = re.compile(r'["\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]')


def coerce_parameter(name: str, raw: str) -> ParamValue | None:
    """Type one PARAMETER value as Ollama does; None for a deprecated name, which Ollama ignores.

    Raises ValueError, with a one-line message, for an unknown or refused name or a value that
    does not parse as the parameter's type (NaN and infinities included: JSON cannot hold them).
    """
    if name in DEPRECATED_PARAMETERS:
        return None
    if name in REJECTED_PARAMETERS:
        raise ValueError(REJECTED_PARAMETERS[name])
    kind = PARAMETERS.get(name)
    if kind is None:
        raise ValueError(f'unknown parameter "{name}"')
    if kind is ParamKind.STRINGS:
        return raw
    if kind is ParamKind.BOOL:
        value: ParamValue | None = raw in _TRUE if raw in _BOOLS else None
    elif kind is ParamKind.INT:
        value = _parse_int64(raw)
    else:
        value = _parse_float32(raw)
    if value is not None:
        return value
    raise ValueError(f'invalid {kind.value} value "{raw}" for parameter {name}')


def params_dict(params: Iterable[tuple[str, ParamValue]]) -> dict[str, JSONValue]:
    """The map Ollama's client builds: ``stop`` values collect into a list, others: last wins."""
    out: dict[str, JSONValue] = {}
    for name, value in params:
        if PARAMETERS.get(name) is ParamKind.STRINGS:
            previous = out.get(name)
            items: list[JSONValue] = [*previous] if isinstance(previous, list) else []
            out[name] = [*items, value]
        else:
            out[name] = value
    return out


def params_json(params: Iterable[tuple[str, ParamValue]]) -> bytes:
    """The params layer Ollama writes for these parameters (an empty list gives ``{}``; Ollama
    writes no layer then). Merging with a base model's layer is ``{**base, **params_dict(...)}``.
    """
    return go_json(params_dict(params))


def go_json(value: JSONValue) -> bytes:
    """What Go's ``json.NewEncoder(w).Encode`` writes for this value as decoded into ``any``:
    numbers, ints included, are float64s, map keys are sorted, and a newline ends the output."""
    return (_encode(value) + "\n").encode()


def parse_params_json(data: bytes) -> dict[str, JSONValue]:
    """Read a params layer back; MdlError unless it is a JSON object of finite numbers."""

    def finite(text: str) -> int | float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"number {text} is out of range")
        return int(text) if _INT.fullmatch(text) and text != "-0" else value

    def no_constants(text: str) -> NoReturn:
        raise ValueError(f"{text} is not JSON")

    try:
        out = json.loads(data, parse_int=finite, parse_float=finite, parse_constant=no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MdlError(f"invalid params layer: {exc}") from exc
    if not isinstance(out, dict):
        raise MdlError(f"invalid params layer: want a JSON object, got {type(out).__name__}")
    return out


def _parse_int64(raw: str) -> int | None:
    """strconv.ParseInt(raw, 10, 64); None for what it rejects."""
    match = _INT.fullmatch(raw)
    value = int(match[1] + match[2]) if match else None
    return value if value is not None and -(2**63) <= value < 2**63 else None


def _parse_float32(raw: str) -> float | None:
    """strconv.ParseFloat(raw, 32), then the float32's shortest decimal read as a float64.

    None for what Go rejects (bad syntax, |x| that rounds past float32) and for NaN/Inf.
    Go's ``_`` digit separators (allowed only after ``0x``) are not accepted.
    """
    exact = _parse_decimal(raw) if _DECIMAL.fullmatch(raw) else _parse_hex(raw)
    if exact is None:
        return None
    negative, magnitude = exact
    rounded = _round_float32(magnitude) if magnitude else Fraction(0)
    if rounded is None:
        return None
    value = float(_shortest_float32(rounded)) if rounded else 0.0
    return -value if negative else value


def _parse_decimal(raw: str) -> tuple[bool, Fraction] | None:
    """Sign and exact magnitude of a decimal that matched _DECIMAL; the magnitude is 0 where
    float32 would round to 0, and the result None where it would overflow for sure."""
    number = Decimal(raw)
    magnitude = number.copy_abs()
    if not magnitude or magnitude.adjusted() < -47:
        return number.is_signed(), Fraction(0)
    return None if magnitude.adjusted() > 40 else (number.is_signed(), Fraction(magnitude))


def _parse_hex(raw: str) -> tuple[bool, Fraction] | None:
    """As _parse_decimal, for Go's hexadecimal floats (``0x1.8p3``); None for bad syntax."""
    match = _HEX.fullmatch(raw)
    if match is None:
        return None
    sign, whole, fraction, exponent = match.groups()
    mantissa = int(whole + fraction, 16)
    digits = exponent.lstrip("+-").lstrip("0")[:10]  # past 10 digits it need only stay huge
    power = int(digits or "0") * (-1 if exponent.startswith("-") else 1) - 4 * len(fraction)
    size = mantissa.bit_length() + power  # 2**(size - 1) <= mantissa * 2**power < 2**size
    if not mantissa or size < -150:
        return sign == "-", Fraction(0)
    return None if size > 129 else (sign == "-", mantissa * Fraction(2) ** power)


def _round_float32(x: Fraction) -> Fraction | None:
    """The float32 nearest x > 0, ties to even, or None past float32's range."""
    exponent = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** exponent > x:
        exponent -= 1
    quantum = Fraction(2) ** (max(exponent, -126) - 23)
    rounded = round(x / quantum) * quantum
    return None if rounded > _FLOAT32_MAX else rounded


def _shortest_float32(x: Fraction) -> Fraction:
    """The decimal with fewest digits that reads back as float32 x > 0, nearest x on a tie."""
    exponent = len(str(x.numerator)) - len(str(x.denominator))
    while Fraction(10) ** exponent > x:
        exponent -= 1
    while Fraction(10) ** (exponent + 1) <= x:
        exponent += 1
    digits = 1
    while True:
        scale = Fraction(10) ** (digits - 1 - exponent)
        scaled = x * scale
        nearest = {math.floor(scaled), math.ceil(scaled)}
        fits = [c for c in nearest if _round_float32(c / scale) == x]
        if fits:
            return min(fits, key=lambda c: (abs(c - scaled), c % 2)) / scale
        digits += 1


def _encode(value: JSONValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _go_float64(float(value))
    if isinstance(value, str):
        return '"' + _JSON_SPECIAL.sub(_escape, value) + '"'
    if isinstance(value, list):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    return "{" + ",".join(f"{_encode(k)}:{_encode(value[k])}" for k in sorted(value)) + "}"


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"  # Go decodes an unpaired surrogate to U+FFFD and writes that raw
    return _JSON_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _go_float64(x: float) -> str:
    """strconv.AppendFloat(x, 'f' or 'e', -1, 64) as encoding/json chooses and trims it."""
    if not math.isfinite(x):
        raise ValueError(f"JSON cannot hold {x}")
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    sign = "-" if x < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # x = 0.<digits> * 10**point
    if abs(x) < 1e-6 or abs(x) >= 1e21:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        power = point - 1
        return f"{sign}{mantissa}e" + (f"-{-power}" if power < 0 else f"+{power:02d}")
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"
