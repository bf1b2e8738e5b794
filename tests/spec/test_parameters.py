"""spec/parameters.py: typing PARAMETER values as Ollama does, and the exact params layer bytes.

Expected bytes follow Go's rules: the client's ``api.FormatParams`` types the values, JSON carries
them to the server as ``map[string]any`` (float64s), and ``json.NewEncoder(w).Encode`` writes them.
"""

from __future__ import annotations

import json
import math
import re
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdl.spec.errors import MdlError
from mdl.spec.parameters import (
    DEPRECATED_PARAMETERS,
    PARAMETERS,
    ParamValue,
    coerce_parameter,
    go_json,
    params_dict,
    params_json,
    parse_params_json,
)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("num_ctx", "4096", 4096),
        ("num_batch", "512", 512),
        ("num_gpu", "-1", -1),
        ("main_gpu", "0", 0),
        ("use_mmap", "true", True),
        ("num_thread", "8", 8),
        ("num_keep", "4", 4),
        ("seed", "42", 42),
        ("num_predict", "-2", -2),
        ("top_k", "40", 40),
        ("top_p", "0.9", 0.9),
        ("min_p", "0.05", 0.05),
        ("repeat_last_n", "64", 64),
        ("temperature", "0.7", 0.7),
        ("repeat_penalty", "1.1", 1.1),
        ("presence_penalty", "1.5", 1.5),
        ("frequency_penalty", "-0.5", -0.5),
        ("stop", "<|im_end|>", "<|im_end|>"),
    ],
)
def test_every_known_parameter_coerces_to_its_type(name: str, raw: str, expected: ParamValue):
    value = coerce_parameter(name, raw)
    assert value == expected
    assert type(value) is type(expected)


def test_the_table_is_current_ollamas():
    assert set(PARAMETERS) == {
        "num_ctx", "num_batch", "num_gpu", "main_gpu", "use_mmap", "num_thread", "num_keep",
        "seed", "num_predict", "top_k", "top_p", "min_p", "repeat_last_n", "temperature",
        "repeat_penalty", "presence_penalty", "frequency_penalty", "stop",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0),
        ("+5", 5),
        ("-1", -1),
        ("007", 7),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        pytest.param("0" * 5000 + "7", 7, id="5000 leading zeros"),
    ],
)
def test_ints_parse_as_go_parseint_base_10(raw: str, expected: int):
    assert coerce_parameter("seed", raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "1.5",
        "1e3",
        "0x10",
        "1_000",
        "",
        "+",
        "\u0661\u0662",
        "9223372036854775808",
        "-9223372036854775809",
        pytest.param("1" * 5000, id="5000 digits"),
    ],
)
def test_ints_reject_what_go_rejects(raw: str):
    message = f'invalid integer value "{raw}" for parameter seed'
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        coerce_parameter("seed", raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.7", 0.7),
        ("1", 1.0),
        ("1.0", 1.0),
        (".5", 0.5),
        ("1.", 1.0),
        ("+2.5E+1", 25.0),
        ("1e-7", 1e-7),
        ("0x1p-2", 0.25),
        ("0X1.8P1", 3.0),
        ("0.123456789123", 0.12345679),  # float32 keeps ~7 digits; its shortest decimal is kept
        ("16777217", 16777216.0),
        ("123456789", 123456790.0),
        ("3.4028235e38", 3.4028235e38),
        ("1e-45", 1e-45),  # the smallest float32 subnormal
        ("1e-46", 0.0),  # underflows quietly, as in Go
        pytest.param("0.1" + "0" * 400 + "1", 0.1, id="0.1 then 400 digits"),
        ("1e-99999999999", 0.0),
        pytest.param("0." + "0" * 5000 + "1", 0.0, id="5000 zeros then 1"),
        pytest.param("0.7" + "0" * 5000, 0.7, id="0.7 then 5000 zeros"),
        ("0x.8p1", 1.0),
        ("0x1.p1", 2.0),
        ("0x1p+0000000000000000001", 2.0),
        pytest.param("0x1p-" + "9" * 5000, 0.0, id="hex with a 5000-digit exponent"),
    ],
)
def test_floats_parse_as_float32_then_keep_the_shortest_decimal(raw: str, expected: float):
    assert coerce_parameter("temperature", raw) == expected


def test_negative_zero_survives():
    value = coerce_parameter("temperature", "-0")
    assert isinstance(value, float)
    assert math.copysign(1.0, value) == -1.0


@pytest.mark.parametrize(
    "raw",
    [
        *("abc", "", ".", "1e", "e5", "1_0", "0x1", "0x1.8", "0x.p1", "0xp1", "0.5 "),
        *("\u0661.\u0665", "3.5e38", "1e39", "-1e99999999999"),
        *("nan", "NaN", "inf", "-Inf", "Infinity"),
        pytest.param("1" + "0" * 5000, id="10**5000"),
        pytest.param("0x1p" + "9" * 5000, id="2**(5000 nines)"),
    ],
)
def test_floats_reject_bad_syntax_overflow_and_non_finite(raw: str):
    with pytest.raises(ValueError, match=r"^invalid float value .* for parameter temperature$"):
        coerce_parameter("temperature", raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(raw, True) for raw in ("1", "t", "T", "TRUE", "true", "True")]
    + [(raw, False) for raw in ("0", "f", "F", "FALSE", "false", "False")],
)
def test_bools_parse_as_go_parsebool(raw: str, expected: bool):
    assert coerce_parameter("use_mmap", raw) is expected


@pytest.mark.parametrize("raw", ["maybe", "yes", "TRUe", "", "2", " true"])
def test_bools_reject_anything_else(raw: str):
    message = f'^invalid boolean value "{raw}" for parameter use_mmap$'
    with pytest.raises(ValueError, match=message):
        coerce_parameter("use_mmap", raw)


@pytest.mark.parametrize("name", sorted(DEPRECATED_PARAMETERS))
def test_deprecated_parameters_are_accepted_and_ignored_without_type_checks(name: str):
    assert coerce_parameter(name, "not even a number") is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tfs_z", 'unknown parameter "tfs_z"'),
        ("numa", 'unknown parameter "numa"'),
        ("num_gqa", 'unknown parameter "num_gqa"'),
        ("Temperature", 'unknown parameter "Temperature"'),
        ("", 'unknown parameter ""'),
        ("typical_p", "typical_p is deprecated and cannot be set as a model parameter; "),
    ],
)
def test_unknown_and_refused_names(name: str, message: str):
    with pytest.raises(ValueError, match="^" + message):
        coerce_parameter(name, "1")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], b"{}\n"),
        ([("temperature", 0.7)], b'{"temperature":0.7}\n'),
        (
            [("stop", "<|im_end|>"), ("stop", "<|im_start|>")],
            b'{"stop":["\\u003c|im_end|\\u003e","\\u003c|im_start|\\u003e"]}\n',
        ),
        (
            [("top_k", 40), ("temperature", 0.5), ("use_mmap", False), ("num_ctx", 8192)],
            b'{"num_ctx":8192,"temperature":0.5,"top_k":40,"use_mmap":false}\n',
        ),
        ([("temperature", 0.5), ("temperature", 0.7)], b'{"temperature":0.7}\n'),
        (
            [("stop", "a"), ("temperature", 1.0), ("stop", "b")],
            b'{"stop":["a","b"],"temperature":1}\n',
        ),
        ([("top_p", 1e-7)], b'{"top_p":1e-7}\n'),
        ([("top_p", 0.000001)], b'{"top_p":0.000001}\n'),
        ([("top_p", 1e21)], b'{"top_p":1e+21}\n'),
        ([("top_p", 1e20)], b'{"top_p":100000000000000000000}\n'),
        ([("top_p", 123456790.0)], b'{"top_p":123456790}\n'),
        ([("top_p", -0.0)], b'{"top_p":-0}\n'),
        ([("seed", 9007199254740993)], b'{"seed":9007199254740992}\n'),  # a float64 on the server
        ([("seed", 2**63 - 1)], b'{"seed":9223372036854776000}\n'),
    ],
)
def test_params_json_bytes(params: list[tuple[str, ParamValue]], expected: bytes):
    assert params_json(params) == expected


@pytest.mark.parametrize(
    ("stop", "encoded"),
    [
        ('say "hi"', b'"say \\"hi\\""'),
        ("back\\slash", b'"back\\\\slash"'),
        ("\n\r\t\b\f", b'"\\n\\r\\t\\b\\f"'),
        ("\x00\x01\x1f\x7f", b'"\\u0000\\u0001\\u001f\x7f"'),
        ("<b>&amp;</b>", b'"\\u003cb\\u003e\\u0026amp;\\u003c/b\\u003e"'),
        ("\u2028\u2029", b'"\\u2028\\u2029"'),
        ("caf\u00e9 \u4f60\u597d \U0001f44b", '"caf\u00e9 \u4f60\u597d \U0001f44b"'.encode()),
        ("\ud800", '"\ufffd"'.encode()),
    ],
)
def test_strings_are_escaped_as_go_escapes_them(stop: str, encoded: bytes):
    assert params_json([("stop", stop)]) == b'{"stop":[' + encoded + b"]}\n"


def test_params_dict_collects_stop_and_keeps_last_of_the_rest():
    params: list[tuple[str, ParamValue]] = [
        ("stop", "x"),
        ("top_k", 1),
        ("stop", "y"),
        ("top_k", 2),
    ]
    assert params_dict(params) == {"stop": ["x", "y"], "top_k": 2}


def test_go_json_handles_any_decoded_json():
    value = {"b": [None, True, 1.5, {"z": [], "a": "<"}], "a": {}}
    assert go_json(value) == b'{"a":{},"b":[null,true,1.5,{"a":"\\u003c","z":[]}]}\n'


def test_go_json_refuses_non_finite_numbers():
    with pytest.raises(ValueError, match="JSON cannot hold nan"):
        go_json(math.nan)


@pytest.mark.parametrize(
    "layer",
    [
        b'{"num_ctx":4096,"stop":["\\u003c|im_end|\\u003e"],"temperature":0.7,"use_mmap":true}\n',
        b'{"mirostat":0,"num_gqa":8,"seed":9223372036854776000,"top_p":1e-7}\n',
        b'{"seed":12345678901234567000,"top_k":-5,"top_p":-0}\n',
        b"{}\n",
    ],
)
def test_a_params_layer_reads_back_and_rewrites_to_the_same_bytes(layer: bytes):
    assert go_json(parse_params_json(layer)) == layer


def test_merging_with_a_base_layer_lets_the_modelfile_win_whole_keys():
    base = parse_params_json(b'{"stop":["a"],"temperature":0.1,"top_k":5}\n')
    merged = {**base, **params_dict([("stop", "b"), ("temperature", 0.9)])}
    assert go_json(merged) == b'{"stop":["b"],"temperature":0.9,"top_k":5}\n'


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[]", "want a JSON object, got list"),
        (b"{", "Expecting"),
        (b'{"a":NaN}', "NaN is not JSON"),
        (b'{"a":1e400}', "number 1e400 is out of range"),
        (b'{"a":"\xff"}', "can't decode"),
    ],
)
def test_parse_params_json_rejects_what_go_would_not_decode(data: bytes, reason: str):
    with pytest.raises(MdlError, match="^invalid params layer: .*" + reason):
        parse_params_json(data)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_floats_match_numpys_shortest_float32_repr(bits: int):
    f32 = struct.unpack("<f", struct.pack("<I", bits))[0]
    if not math.isfinite(f32):
        with pytest.raises(ValueError):
            coerce_parameter("temperature", repr(f32))
        return
    expected = float(np.format_float_scientific(np.float32(f32), unique=True))
    assert coerce_parameter("temperature", repr(f32)) == expected


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_read_back_exactly_and_use_an_exponent_only_outside_1e_6_to_1e21(x: float):
    text = go_json(x).decode().rstrip("\n")
    assert json.loads(text, parse_int=float) == x
    assert ("e" in text) == (x != 0 and not 1e-6 <= abs(x) < 1e21)
    assert not text.endswith(".0")
