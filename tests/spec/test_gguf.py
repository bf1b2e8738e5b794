"""spec/gguf.py: the header reader on real files written by the gguf package, on hand-made headers,
and on random bytes."""

from __future__ import annotations

import functools
import io
import re
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO

import gguf
import pytest
from ggufs import (
    CHATML,
    gguf_bytes,
    gguf_string,
    write_lora,
    write_not_gguf,
    write_tiny_llama,
    write_truncated,
    write_wrong_version,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdl.spec.errors import GGUFError
from mdl.spec.gguf import (
    FILE_TYPES,
    GGML_TYPES,
    MAX_KEPT_ARRAY,
    ArraySummary,
    GGUFInfo,
    human_number,
    read_gguf_file,
    read_gguf_info,
)

U32, STRING, ARRAY, UINT64, FLOAT32, INT32 = 4, 8, 9, 10, 6, 5


@functools.cache
def tiny_bytes() -> bytes:
    """The default tiny llama, written once per session (hypothesis cannot use tmp_path)."""
    with tempfile.TemporaryDirectory() as d:
        return write_tiny_llama(Path(d) / "tiny").read_bytes()


def read_bytes(data: bytes) -> GGUFInfo:
    return read_gguf_info(io.BytesIO(data), name="mem.gguf")


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("gguf") / "tiny")


# --- the tiny llama --------------------------------------------------------------------------


def test_tiny_llama_header(tiny: Path) -> None:
    info = read_gguf_file(tiny)
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.name == "tiny"
    assert info.context_length == 512
    assert info.file_type == 0
    assert info.quantization == "F32"
    assert info.chat_template == CHATML
    assert not info.is_adapter
    assert info.adapter_type is None
    assert info.license is None
    assert info.metadata["llama.embedding_length"] == 64
    assert info.metadata["tokenizer.ggml.tokens"] == ArraySummary("string", 296)


def test_tiny_llama_counts_match_the_gguf_package(tiny: Path) -> None:
    info = read_gguf_file(tiny)
    reader = gguf.GGUFReader(tiny)
    assert info.tensor_count == len(reader.tensors)
    assert info.parameter_count == sum(int(t.n_elements) for t in reader.tensors)
    assert info.parameter_size == human_number(info.parameter_count) == "120K"
    assert info.data_offset == reader.data_offset
    assert info.data_end == tiny.stat().st_size
    shapes = {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}
    assert {t.name: t.shape for t in info.tensors} == shapes


@pytest.mark.parametrize(
    ("kwargs", "context_length", "chat_template", "name"),
    [
        ({}, 512, CHATML, "tiny"),
        ({"ctx": 2048}, 2048, CHATML, "tiny"),
        ({"chat_template": None}, 512, None, "tiny"),
        ({"chat_template": "{{ prompt }}", "name": "other"}, 512, "{{ prompt }}", "other"),
    ],
)
def test_tiny_llama_parameters(
    tmp_path: Path,
    kwargs: dict[str, object],
    context_length: int,
    chat_template: str | None,
    name: str,
) -> None:
    info = read_gguf_file(write_tiny_llama(tmp_path / "m", **kwargs))  # type: ignore[arg-type]
    assert (info.context_length, info.chat_template, info.name) == (
        context_length,
        chat_template,
        name,
    )


def test_writers_are_deterministic(tmp_path: Path) -> None:
    a = write_tiny_llama(tmp_path / "a", seed=7).read_bytes()
    assert a == write_tiny_llama(tmp_path / "b", seed=7).read_bytes()
    assert a != write_tiny_llama(tmp_path / "c", seed=8).read_bytes()
    lora = write_lora(tmp_path / "l1", seed=3).read_bytes()
    assert lora == write_lora(tmp_path / "l2", seed=3).read_bytes()


def test_reads_a_stream_without_a_name_or_seek(tiny: Path) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            chunk = self._data.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    data = tiny.read_bytes()
    pipe: BinaryIO = Pipe(data)  # type: ignore[assignment]
    assert read_gguf_info(pipe).parameter_count == read_bytes(data).parameter_count
    cut: BinaryIO = Pipe(data[:-1])  # type: ignore[assignment]
    with pytest.raises(GGUFError, match=r"^<stream>: truncated GGUF: expected at least"):
        read_gguf_info(cut, size=len(data) - 1)


# --- LoRA adapters ---------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "alpha"), [("llama", 8.0), ("llama", 16.0), ("qwen2", 0.5)])
def test_lora_adapter(tmp_path: Path, arch: str, alpha: float) -> None:
    info = read_gguf_file(write_lora(tmp_path / "adapter", arch=arch, alpha=alpha))
    assert info.is_adapter
    assert info.adapter_type == "lora"
    assert info.lora_alpha == alpha
    assert info.architecture == arch
    assert info.quantization == "F32"  # no general.file_type: derived from the tensors
    assert info.parameter_count == 2 * 2 * (4 * 64 + 64 * 4)
    names = {t.name for t in info.tensors}
    assert {"blk.0.attn_q.weight.lora_a", "blk.1.attn_v.weight.lora_b"} <= names


# --- broken files ----------------------------------------------------------------------------

BROKEN = [
    pytest.param(lambda p: write_not_gguf(p), r"not a GGUF file \(magic b'FROM'", id="text"),
    pytest.param(lambda p: write_not_gguf(p, kind="random"), r"not a GGUF file", id="random"),
    pytest.param(lambda p: write_not_gguf(p, kind="empty"), r"not a GGUF file", id="empty"),
    pytest.param(lambda p: write_truncated(p, cut="magic"), r"not a GGUF file", id="cut-magic"),
    pytest.param(
        lambda p: write_truncated(p, cut="metadata"),
        r"truncated or corrupt GGUF: 21 tensors cannot fit in the 184 bytes left after byte 16$",
        id="cut-metadata",
    ),
    pytest.param(
        lambda p: write_truncated(p, cut="tensor_infos"),
        r"truncated GGUF: tensor name at byte \d+ needs 17 bytes, only 5 left$",
        id="cut-tensor-infos",
    ),
    pytest.param(
        lambda p: write_truncated(p, cut="data"),
        r"truncated GGUF: expected at least 489280 bytes, file has 249024$",
        id="cut-data",
    ),
    pytest.param(
        lambda p: write_wrong_version(p, version=1),
        r"unsupported GGUF version 1 \(supported: 2 and 3\)$",
        id="version-1",
    ),
    pytest.param(
        lambda p: write_wrong_version(p, version=4),
        r"unsupported GGUF version 4 \(supported: 2 and 3\)$",
        id="version-4",
    ),
    pytest.param(
        lambda p: write_wrong_version(p, version=3, byteorder="big"),
        r"big-endian GGUF \(version 3\) is not supported$",
        id="big-endian",
    ),
]


@pytest.mark.parametrize(("write", "message"), BROKEN)
def test_broken_file_is_refused(tmp_path: Path, write: object, message: str) -> None:
    path = write(tmp_path / "broken")  # type: ignore[operator]
    with pytest.raises(GGUFError, match=f"^{re.escape(str(path))}: {message}"):
        read_gguf_file(path)


def test_missing_file_is_a_gguf_error(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match=r"missing: cannot read: No such file"):
        read_gguf_file(tmp_path / "missing")


# --- hand-made headers -----------------------------------------------------------------------

KV_ARCH = ("general.architecture", STRING, gguf_string("llama"))

HEADER = b"GGUF" + u32(3)
HEADERS = [
    pytest.param(
        HEADER + u64(0) + u64(2**62),
        r"\d+ metadata entries cannot fit in the 0 bytes left after byte 24",
        id="absurd-kv-count",
    ),
    pytest.param(
        HEADER + u64(2**62) + u64(0),
        r"\d+ tensors cannot fit in the 8 bytes left after byte 16",
        id="absurd-tensor-count",
    ),
    pytest.param(
        gguf_bytes([("k", STRING, u64(2**63))]),
        r"truncated GGUF: value of 'k' at byte 45 needs \d+ bytes, only 0 left",
        id="absurd-string",
    ),
    pytest.param(
        gguf_bytes([("k", ARRAY, u32(U32) + u64(2**60))]), r"items of 'k'", id="absurd-array"
    ),
    pytest.param(
        gguf_bytes([("k", ARRAY, u32(STRING) + u64(2**40))]),
        r"items of 'k'",
        id="absurd-string-array",
    ),
    pytest.param(
        gguf_bytes([("k", ARRAY, u32(STRING) + u64(100) + gguf_string("x") * 99)]),
        r"truncated GGUF: length of a string in 'k'",
        id="short-string-array",
    ),
    pytest.param(
        gguf_bytes([("k", 13, b"")]), r"'k' has unknown value type 13", id="unknown-value-type"
    ),
    pytest.param(
        gguf_bytes([("k", ARRAY, u32(99) + u64(1))]),
        r"'k' has unknown item type 99",
        id="unknown-item-type",
    ),
    pytest.param(
        gguf_bytes([("k", ARRAY, (u32(ARRAY) + u64(1)) * 20)]),
        r"'k' nests arrays deeper than 8",
        id="deep-nesting",
    ),
    pytest.param(gguf_bytes([KV_ARCH, KV_ARCH]), r"duplicate metadata key", id="duplicate-key"),
    pytest.param(
        HEADER + u64(0) + u64(1) + gguf_string(b"\xff") + u32(U32) + u32(1),
        r"metadata key at byte 32 is not UTF-8",
        id="bad-key-utf8",
    ),
    pytest.param(
        gguf_bytes([("general.alignment", U32, u32(3))]),
        r"general.alignment 3 is not a positive power of two",
        id="bad-alignment",
    ),
    pytest.param(
        gguf_bytes([], [("t", (32,), 31, 0)]), r"'t' has unknown ggml type 31", id="ggml-type"
    ),
    pytest.param(gguf_bytes([], [("t", (1, 1, 1, 1, 1), 0, 0)]), r"5 dimensions", id="5-dims"),
    pytest.param(gguf_bytes([], [("t", (-4,), 0, 0)]), r"negative dimension", id="negative-dim"),
    pytest.param(
        gguf_bytes([], [("t", (48,), 2, 0)], data=b"\0" * 64),
        r"row of 48 is not a multiple of the Q4_0 block size 32",
        id="partial-block",
    ),
    pytest.param(
        gguf_bytes([], [("t", (4,), 0, 8)], data=b"\0" * 64),
        r"'t' at offset 8 is not aligned to 32",
        id="unaligned",
    ),
    pytest.param(
        gguf_bytes([], [("t", (4,), 0, 0)] * 2), r"duplicate tensor 't'", id="duplicate-tensor"
    ),
    pytest.param(
        gguf_bytes([], [("t", (4,), 0, 0)]),
        r"truncated GGUF: expected at least 80 bytes, file has 64",
        id="no-data",
    ),
]


@pytest.mark.parametrize(("data", "message"), HEADERS)
def test_bad_header_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(GGUFError, match=f"^mem.gguf: .*({message})"):
        read_bytes(data)


def test_metadata_value_types() -> None:
    one_string = u32(STRING) + u64(1) + gguf_string("x")  # an array holding one string
    data = gguf_bytes(
        [
            KV_ARCH,
            ("u8", 0, b"\xff"),
            ("i8", 1, b"\xff"),
            ("i16", 3, struct.pack("<h", -2)),
            ("f32", FLOAT32, struct.pack("<f", 0.5)),
            ("yes", 7, b"\x01"),
            ("u64", UINT64, u64(2**64 - 1)),
            ("i64", 11, struct.pack("<q", -(2**63))),
            ("f64", 12, struct.pack("<d", 0.1)),
            ("latin1", STRING, gguf_string(b"caf\xe9")),
            ("small", ARRAY, u32(INT32) + u64(3) + struct.pack("<3i", 1, -2, 3)),
            ("limit", ARRAY, u32(INT32) + u64(MAX_KEPT_ARRAY) + b"\0" * 4 * MAX_KEPT_ARRAY),
            ("big", ARRAY, u32(INT32) + u64(MAX_KEPT_ARRAY + 1) + b"\0" * 4 * (MAX_KEPT_ARRAY + 1)),
            ("words", ARRAY, u32(STRING) + u64(2) + gguf_string("a") + gguf_string("bc")),
            ("many_words", ARRAY, u32(STRING) + u64(1000) + gguf_string("w") * 1000),
            ("nested", ARRAY, u32(ARRAY) + u64(2) + (u32(U32) + u64(1) + u32(9)) * 2),
            ("big_nested", ARRAY, u32(ARRAY) + u64(100) + one_string * 100),
        ]
    )  # fmt: skip
    meta = read_bytes(data).metadata
    assert [meta[k] for k in ("u8", "i8", "i16", "f32", "yes")] == [255, -1, -2, 0.5, True]
    assert (meta["u64"], meta["i64"], meta["f64"]) == (2**64 - 1, -(2**63), 0.1)
    assert meta["latin1"] == "caf\ufffd"
    assert meta["small"] == (1, -2, 3)
    assert meta["limit"] == (0,) * MAX_KEPT_ARRAY
    assert meta["big"] == ArraySummary("int32", MAX_KEPT_ARRAY + 1)
    assert meta["words"] == ("a", "bc")
    assert meta["many_words"] == ArraySummary("string", 1000)
    assert meta["nested"] == ((9,), (9,))
    assert meta["big_nested"] == ArraySummary("array", 100)


def test_version_2_and_an_empty_model_are_read() -> None:
    info = read_bytes(gguf_bytes([KV_ARCH], version=2))
    assert (info.version, info.architecture, info.tensor_count, info.parameter_count) == (
        2,
        "llama",
        0,
        0,
    )
    assert info.quantization == "unknown"
    assert info.context_length is None


@pytest.mark.parametrize(
    ("file_type", "tensor_types", "expected"),
    [
        (15, [12, 0], "Q4_K_M"),
        (3, [3], "Q4_1"),
        (None, [8, 8, 0], "Q8_0"),  # the F32 norm is a vector: not counted
        (None, [0], "F32"),
        (None, [30, 2, 2], "Q4_0"),
        (1024, [1], "F16"),  # LLAMA_FTYPE_GUESSED is no name: derived
    ],
)
def test_quantization(file_type: int | None, tensor_types: list[int], expected: str) -> None:
    kvs = [KV_ARCH]
    if file_type is not None:
        kvs.append(("general.file_type", U32, u32(file_type)))
    tensors = []
    offset = 0
    for i, type_id in enumerate(tensor_types):
        ggml = GGML_TYPES[type_id]
        ne = (256, 4) if i < len(tensor_types) - 1 or len(tensor_types) == 1 else (256,)
        tensors.append((f"t{i}", ne, type_id, offset))
        n_bytes = 256 * (4 if len(ne) == 2 else 1) // ggml.block_size * ggml.type_size
        offset += -(-n_bytes // 32) * 32
    info = read_bytes(gguf_bytes(kvs, tensors, data=b"\0" * offset))
    assert info.quantization == expected
    assert info.data_end <= len(gguf_bytes(kvs, tensors, data=b"\0" * offset))


def test_ggml_type_table_matches_the_gguf_package() -> None:
    expected = {int(t): (t.name, *gguf.GGML_QUANT_SIZES[t]) for t in gguf.GGMLQuantizationType}
    assert {k: (t.name, t.block_size, t.type_size) for k, t in GGML_TYPES.items()} == expected


def test_file_type_names_match_llama_h() -> None:
    for ftype in gguf.LlamaFileType:
        if ftype != gguf.LlamaFileType.GUESSED:
            assert FILE_TYPES[int(ftype)] == ftype.name.removeprefix("ALL_").removeprefix("MOSTLY_")


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0"),
        (999, "999"),
        (1000, "1K"),
        (1001, "1K"),
        (1_000_000, "1M"),
        (125_000_000, "125M"),
        (134_515_008, "134.52M"),
        (500_500_000, "500.50M"),
        (500_550_000, "500.55M"),
        (1_000_000_000, "1B"),
        (1_240_000_000, "1.2B"),
        (2_800_000_000, "2.8B"),
        (2_850_000_000, "2.9B"),
        (7_000_000_000, "7B"),
        (1_000_000_000_000, "1000B"),
    ],
)
def test_human_number_matches_ollama(n: int, expected: str) -> None:
    assert human_number(n) == expected


# --- nothing but GGUFError -------------------------------------------------------------------

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parses_or_refuses(data: bytes) -> None:
    try:
        read_bytes(data)
    except GGUFError as exc:
        assert str(exc).startswith("mem.gguf: ")


@FAST
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_gguf_error(data: bytes) -> None:
    parses_or_refuses(data)


@FAST
@given(st.binary(max_size=256))
def test_random_bytes_after_the_magic_raise_only_gguf_error(data: bytes) -> None:
    parses_or_refuses(b"GGUF" + data)


@FAST
@given(st.data())
def test_every_truncation_is_refused(data: st.DataObject) -> None:
    whole = tiny_bytes()
    cut = data.draw(st.integers(min_value=0, max_value=len(whole) - 1))
    with pytest.raises(GGUFError, match=r"^mem.gguf: (not a GGUF|truncated)"):
        read_bytes(whole[:cut])


@FAST
@given(st.data())
def test_corrupted_headers_raise_only_gguf_error(data: st.DataObject) -> None:
    whole = bytearray(tiny_bytes())
    header_end = 8768
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=header_end - 1))
        whole[at] = data.draw(st.integers(min_value=0, max_value=255))
    parses_or_refuses(bytes(whole))
