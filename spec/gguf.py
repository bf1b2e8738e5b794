"""Read the header of a GGUF model file: metadata, tensor infos, and where the data must end.

GGUF (llama.cpp's model format, versions 2 and 3, little-endian) is laid out as::

    "GGUF"  u32 version  u64 tensor_count  u64 kv_count
    kv_count  x  (string key, u32 value_type, value)
    tensor_count x  (string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset)
    padding to general.alignment (default 32)
    tensor data; each tensor at data_offset + offset

A string is ``u64 length`` + UTF-8 bytes; an array is ``u32 item_type, u64 count, items``.

mdl reads only the header (no tensor data) so that ``build`` can describe a model and refuse a
broken one before it enters the store: every malformed input raises ``GGUFError`` naming the file,
never ``struct.error`` or ``MemoryError``. Lengths and counts are checked against the file size
before anything is allocated, and large arrays (``tokenizer.tokens`` holds ~100k strings) are
skipped through a buffered reader instead of being kept.
"""

from __future__ import annotations

import io
import os
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import BinaryIO, TypeAlias

from mdl.spec.errors import GGUFError

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_KEPT_ARRAY = 64  # arrays longer than this are summarised as ArraySummary, not kept
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NESTING = 8  # arrays of arrays; llama.cpp reads none, so deeper ones are only an attack

# GGUF metadata value types (gguf_type in gguf.h).
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY = range(10)
UINT64, INT64, FLOAT64 = 10, 11, 12

_SCALARS: dict[int, struct.Struct] = {
    UINT8: struct.Struct("<B"),
    INT8: struct.Struct("<b"),
    UINT16: struct.Struct("<H"),
    INT16: struct.Struct("<h"),
    UINT32: struct.Struct("<I"),
    INT32: struct.Struct("<i"),
    FLOAT32: struct.Struct("<f"),
    BOOL: struct.Struct("<?"),
    UINT64: struct.Struct("<Q"),
    INT64: struct.Struct("<q"),
    FLOAT64: struct.Struct("<d"),
}
_U32 = _SCALARS[UINT32]
_U64 = _SCALARS[UINT64]
_I64 = _SCALARS[INT64]

VALUE_TYPE_NAMES = {
    UINT8: "uint8", INT8: "int8", UINT16: "uint16", INT16: "int16", UINT32: "uint32",
    INT32: "int32", FLOAT32: "float32", BOOL: "bool", STRING: "string", ARRAY: "array",
    UINT64: "uint64", INT64: "int64", FLOAT64: "float64",
}  # fmt: skip


@dataclass(frozen=True)
class GGMLType:
    """A tensor storage type: ``block_size`` elements are stored in ``type_size`` bytes."""

    id: int
    name: str
    block_size: int
    type_size: int


# ggml_type in ggml.h with the block sizes of ggml.c's type_traits. Ids missing here were removed
# from ggml (Q4_2, Q4_3, Q4_0_4_4, IQ4_NL_4_4, ...) and current llama.cpp refuses them too.
GGML_TYPES: Mapping[int, GGMLType] = MappingProxyType(
    {
        t.id: t
        for t in (
            GGMLType(0, "F32", 1, 4),
            GGMLType(1, "F16", 1, 2),
            GGMLType(2, "Q4_0", 32, 18),
            GGMLType(3, "Q4_1", 32, 20),
            GGMLType(6, "Q5_0", 32, 22),
            GGMLType(7, "Q5_1", 32, 24),
            GGMLType(8, "Q8_0", 32, 34),
            GGMLType(9, "Q8_1", 32, 40),
            GGMLType(10, "Q2_K", 256, 84),
            GGMLType(11, "Q3_K", 256, 110),
            GGMLType(12, "Q4_K", 256, 144),
            GGMLType(13, "Q5_K", 256, 176),
            GGMLType(14, "Q6_K", 256, 210),
            GGMLType(15, "Q8_K", 256, 292),
            GGMLType(16, "IQ2_XXS", 256, 66),
            GGMLType(17, "IQ2_XS", 256, 74),
            GGMLType(18, "IQ3_XXS", 256, 98),
            GGMLType(19, "IQ1_S", 256, 50),
            GGMLType(20, "IQ4_NL", 32, 18),
            GGMLType(21, "IQ3_S", 256, 110),
            GGMLType(22, "IQ2_S", 256, 82),
            GGMLType(23, "IQ4_XS", 256, 136),
            GGMLType(24, "I8", 1, 1),
            GGMLType(25, "I16", 1, 2),
            GGMLType(26, "I32", 1, 4),
            GGMLType(27, "I64", 1, 8),
            GGMLType(28, "F64", 1, 8),
            GGMLType(29, "IQ1_M", 256, 56),
            GGMLType(30, "BF16", 1, 2),
            GGMLType(34, "TQ1_0", 256, 54),
            GGMLType(35, "TQ2_0", 256, 66),
            GGMLType(39, "MXFP4", 32, 17),
            GGMLType(40, "NVFP4", 64, 36),
            GGMLType(41, "Q1_0", 128, 18),
        )
    }
)

# llama_ftype in llama.h, as written to general.file_type; names as llama.cpp and Ollama print them.
FILE_TYPES: Mapping[int, str] = MappingProxyType({
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 7: "Q8_0", 8: "Q5_0",
    9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 33: "Q4_0_4_4", 34: "Q4_0_4_8",
    35: "Q4_0_8_8", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
})  # fmt: skip


@dataclass(frozen=True)
class ArraySummary:
    """A metadata array too long to keep (more than MAX_KEPT_ARRAY items): its type and length."""

    item_type: str
    length: int


MetadataValue: TypeAlias = str | int | float | bool | tuple["MetadataValue", ...] | ArraySummary


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's header entry; ``offset`` is relative to the start of the data section."""

    name: str
    shape: tuple[int, ...]
    ggml_type: GGMLType
    offset: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        return self.n_elements // self.ggml_type.block_size * self.ggml_type.type_size


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF header says about a model or adapter; built by ``read_gguf_info``."""

    version: int
    metadata: Mapping[str, MetadataValue]
    tensors: tuple[TensorInfo, ...]
    alignment: int
    data_offset: int  # where tensor data starts, from the start of the file
    data_end: int  # the least file size that holds every tensor

    @property
    def tensor_count(self) -> int:
        return len(self.tensors)

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def parameter_size(self) -> str:
        """Parameter count as Ollama shows it ("135M", "1.2B", "7B")."""
        return human_number(self.parameter_count)

    @property
    def architecture(self) -> str | None:
        return self._str("general.architecture")

    @property
    def name(self) -> str | None:
        return self._str("general.name")

    @property
    def license(self) -> str | None:
        return self._str("general.license")

    @property
    def file_type(self) -> int | None:
        return self._int("general.file_type")

    @property
    def quantization(self) -> str:
        """The llama.cpp file type name ("Q4_K_M"); without one, the dominant tensor type."""
        file_type = self.file_type
        if file_type is not None and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        return dominant_tensor_type(self.tensors)

    @property
    def context_length(self) -> int | None:
        arch = self.architecture
        return None if arch is None else self._int(f"{arch}.context_length")

    @property
    def chat_template(self) -> str | None:
        return self._str("tokenizer.chat_template")

    @property
    def is_adapter(self) -> bool:
        return self.metadata.get("general.type") == "adapter"

    @property
    def adapter_type(self) -> str | None:
        return self._str("adapter.type")

    @property
    def lora_alpha(self) -> float | None:
        value = self.metadata.get("adapter.lora.alpha")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def _str(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None

    def _int(self, key: str) -> int | None:
        value = self.metadata.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def human_number(n: int) -> str:
    """Format a count like Ollama's ``format.HumanNumber``: 1K, 125M, 500.55M, 1B, 2.8B."""
    if n >= 1_000_000_000:
        x = n / 1_000_000_000
        return f"{x:.0f}B" if x.is_integer() else f"{x:.1f}B"
    if n >= 1_000_000:
        x = n / 1_000_000
        return f"{x:.0f}M" if x.is_integer() else f"{x:.2f}M"
    if n >= 1_000:
        return f"{n / 1_000:.0f}K"
    return str(n)


def dominant_tensor_type(tensors: tuple[TensorInfo, ...]) -> str:
    """The ggml type holding most weights among matrices (norms and biases stay F32 when quantized).

    Used when ``general.file_type`` is missing, as in many adapters; "unknown" with no tensors.
    """
    matrices = [t for t in tensors if len(t.shape) >= 2] or list(tensors)
    if not matrices:
        return "unknown"
    weight: Counter[int] = Counter()
    for t in matrices:
        weight[t.ggml_type.id] += t.n_elements
    best = max(sorted(weight), key=lambda type_id: weight[type_id])
    return GGML_TYPES[best].name


def read_gguf_file(path: str | os.PathLike[str]) -> GGUFInfo:
    """Open ``path`` and read its GGUF header (or a whisper.cpp ggml file's, which
    ``whisper_ggml`` describes in the same terms); the one function here that opens a file."""
    from mdl.spec import whisper_ggml

    name = os.fspath(path)
    try:
        with open(path, "rb") as f:
            if f.read(4) == whisper_ggml.MAGIC:
                return whisper_ggml.read_whisper_info(f, os.fstat(f.fileno()).st_size, name)
            f.seek(0)
            return read_gguf_info(f, name=name)
    except OSError as exc:
        raise GGUFError(f"{name}: cannot read: {exc.strerror or exc}") from exc


def read_gguf_info(f: BinaryIO, size: int | None = None, *, name: str | None = None) -> GGUFInfo:
    """Parse a GGUF header from ``f`` at its current position, which is the start of the file.

    ``size`` is the file's length; without it a seekable ``f`` is measured. When the size is known,
    counts and lengths that cannot fit are refused at once and a file shorter than its tensor data
    is refused as truncated. ``name`` labels errors (default: ``f.name``).
    """
    if name is None:
        file_name = getattr(f, "name", None)
        name = file_name if isinstance(file_name, str) else "<stream>"
    if size is None:
        size = _measure(f)
    r = _Reader(f, size, name)

    magic = r.peek_magic()
    if magic != MAGIC:
        raise GGUFError(f"{name}: not a GGUF file (magic {magic!r}, expected {MAGIC!r})")
    version = r.u32("version")
    if version not in SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if swapped in SUPPORTED_VERSIONS:
            raise GGUFError(f"{name}: big-endian GGUF (version {swapped}) is not supported")
        raise GGUFError(f"{name}: unsupported GGUF version {version} (supported: 2 and 3)")
    tensor_count = r.count(r.u64("tensor count"), 24, "tensors")  # name len, dims, type, offset
    kv_count = r.count(r.u64("metadata count"), 13, "metadata entries")  # key len, type, 1 byte

    metadata: dict[str, MetadataValue] = {}
    for _ in range(kv_count):
        key = r.string("metadata key", strict=True)
        value_type = r.u32(f"type of {key!r}")
        if key in metadata:
            raise GGUFError(f"{name}: duplicate metadata key {key!r}")
        metadata[key] = r.value(value_type, key)

    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for _ in range(tensor_count):
        tensors.append(_tensor_info(r, seen))

    alignment = _alignment(metadata, name)
    header_end = r.offset
    data_offset = -(-header_end // alignment) * alignment
    data_end = header_end
    for t in tensors:
        if t.offset % alignment:
            raise GGUFError(
                f"{name}: tensor {t.name!r} at offset {t.offset} is not aligned to {alignment}"
            )
        data_end = max(data_end, data_offset + t.offset + t.n_bytes)
    if size is not None and size < data_end:
        raise GGUFError(
            f"{name}: truncated GGUF: expected at least {data_end} bytes, file has {size}"
        )
    return GGUFInfo(
        version=version,
        metadata=MappingProxyType(metadata),
        tensors=tuple(tensors),
        alignment=alignment,
        data_offset=data_offset,
        data_end=data_end,
    )


def _tensor_info(r: _Reader, seen: set[str]) -> TensorInfo:
    name = r.string("tensor name", strict=True)
    if name in seen:
        raise GGUFError(f"{r.name}: duplicate tensor {name!r}")
    seen.add(name)
    n_dims = r.u32(f"dimension count of tensor {name!r}")
    if n_dims > MAX_DIMS:
        raise GGUFError(f"{r.name}: tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})")
    shape = tuple(r.i64(f"shape of tensor {name!r}") for _ in range(n_dims))
    if any(d < 0 for d in shape):
        raise GGUFError(f"{r.name}: tensor {name!r} has a negative dimension {shape}")
    type_id = r.u32(f"type of tensor {name!r}")
    ggml_type = GGML_TYPES.get(type_id)
    if ggml_type is None:
        raise GGUFError(f"{r.name}: tensor {name!r} has unknown ggml type {type_id}")
    if shape and shape[0] % ggml_type.block_size:
        raise GGUFError(
            f"{r.name}: tensor {name!r} row of {shape[0]} is not a multiple of the "
            f"{ggml_type.name} block size {ggml_type.block_size}"
        )
    offset = r.u64(f"offset of tensor {name!r}")
    return TensorInfo(name=name, shape=shape, ggml_type=ggml_type, offset=offset)


def _alignment(metadata: Mapping[str, MetadataValue], name: str) -> int:
    value = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value & (value - 1):
        raise GGUFError(f"{name}: general.alignment {value!r} is not a positive power of two")
    return value


def _measure(f: BinaryIO) -> int | None:
    """Bytes left in ``f`` from its position, or None if it cannot seek."""
    try:
        if not f.seekable():
            return None
        start = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(start)
    except (OSError, ValueError):
        return None
    return max(end - start, 0)


class _Reader:
    """Sequential, buffered reads with exact-length checks; offsets count from the start."""

    CHUNK = 1 << 20

    def __init__(self, f: BinaryIO, size: int | None, name: str) -> None:
        self.f = f
        self.size = size
        self.name = name
        self.offset = 0  # bytes consumed
        self._buf = b""
        self._pos = 0

    def _left(self) -> int | None:
        return None if self.size is None else self.size - self.offset

    def _truncated(self, what: str, n: int) -> GGUFError:
        left = self._left()
        have = "" if left is None else f", only {max(left, 0)} left"
        return GGUFError(
            f"{self.name}: truncated GGUF: {what} at byte {self.offset} needs {n} bytes{have}"
        )

    def _fill(self, n: int) -> bool:
        """Make at least ``n`` bytes available in the buffer; False at end of file.

        Reads in chunks, so a length that lies about an unmeasured stream costs only what is there.
        """
        have = len(self._buf) - self._pos
        if have >= n:
            return True
        parts = [self._buf[self._pos :]]
        while have < n:
            chunk = self.f.read(self.CHUNK)
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        self._buf, self._pos = b"".join(parts), 0
        return have >= n

    def peek_magic(self) -> bytes:
        self._fill(len(MAGIC))
        magic = self._buf[self._pos : self._pos + len(MAGIC)]
        if magic == MAGIC:
            self._pos += len(MAGIC)
            self.offset += len(MAGIC)
        return magic

    def read(self, n: int, what: str) -> bytes:
        left = self._left()
        if (left is not None and n > left) or not self._fill(n):
            raise self._truncated(what, n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        self.offset += n
        return data

    def skip(self, n: int, what: str) -> None:
        left = self._left()
        if left is not None and n > left:
            raise self._truncated(what, n)
        buffered = len(self._buf) - self._pos
        if n <= buffered:
            self._pos += n
            self.offset += n
            return
        rest = n - buffered
        self._buf, self._pos = b"", 0
        if left is not None and self.f.seekable():
            self.f.seek(rest, io.SEEK_CUR)  # in bounds: checked against the size above
        else:
            while rest:
                chunk = self.f.read(min(rest, self.CHUNK))
                if not chunk:
                    raise self._truncated(what, n)
                rest -= len(chunk)
        self.offset += n

    def skip_strings(self, count: int, key: str) -> None:
        """Skip ``count`` strings; the hot loop of a header (a vocabulary has ~100k of them)."""
        unpack_from = _U64.unpack_from
        while count:
            buf, pos, end = self._buf, self._pos, len(self._buf)
            while count and pos + 8 <= end:
                n = unpack_from(buf, pos)[0]
                if pos + 8 + n > end:
                    break
                pos += 8 + n
                count -= 1
            self.offset += pos - self._pos
            self._pos = pos
            if count:  # the next string straddles the buffer: fall back to the checked path
                self.skip(self.u64(f"length of a string in {key!r}"), f"a string in {key!r}")
                count -= 1

    def scalar(self, value_type: int, what: str) -> int | float | bool:
        fmt = _SCALARS[value_type]
        value: int | float | bool = fmt.unpack(self.read(fmt.size, what))[0]
        return value

    def u32(self, what: str) -> int:
        return int(_U32.unpack(self.read(4, what))[0])

    def u64(self, what: str) -> int:
        return int(_U64.unpack(self.read(8, what))[0])

    def i64(self, what: str) -> int:
        return int(_I64.unpack(self.read(8, what))[0])

    def count(self, n: int, min_item_size: int, what: str) -> int:
        """Refuse a count that cannot fit in what is left of the file."""
        left = self._left()
        if left is not None and n * min_item_size > left:
            raise GGUFError(
                f"{self.name}: truncated or corrupt GGUF: {n} {what} cannot fit in the "
                f"{left} bytes left after byte {self.offset}"
            )
        return n

    def string(self, what: str, *, strict: bool = False) -> str:
        """Read a string; keys and names must be UTF-8, values are decoded leniently as llama.cpp
        does not check them."""
        raw = self.read(self.u64(f"length of {what}"), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if strict:
                raise GGUFError(
                    f"{self.name}: {what} at byte {self.offset - len(raw)} is not UTF-8"
                ) from exc
            return raw.decode("utf-8", errors="replace")

    def value(self, value_type: int, key: str, depth: int = 0) -> MetadataValue:
        if value_type in _SCALARS:
            return self.scalar(value_type, f"value of {key!r}")
        if value_type == STRING:
            return self.string(f"value of {key!r}")
        if value_type == ARRAY:
            return self.array(key, depth)
        raise GGUFError(f"{self.name}: metadata {key!r} has unknown value type {value_type}")

    def array(self, key: str, depth: int = 0) -> MetadataValue:
        if depth >= MAX_NESTING:
            raise GGUFError(f"{self.name}: metadata {key!r} nests arrays deeper than {MAX_NESTING}")
        item_type = self.u32(f"item type of {key!r}")
        type_name = VALUE_TYPE_NAMES.get(item_type)
        if type_name is None:
            raise GGUFError(f"{self.name}: array {key!r} has unknown item type {item_type}")
        fixed = _SCALARS.get(item_type)
        # strings take 8 bytes and arrays 12 at least, so a lying count is caught here
        min_size = fixed.size if fixed else (8 if item_type == STRING else 12)
        length = self.count(self.u64(f"length of {key!r}"), min_size, f"items of {key!r}")
        if length <= MAX_KEPT_ARRAY:
            return tuple(self.value(item_type, key, depth + 1) for _ in range(length))
        if fixed is not None:
            self.skip(length * fixed.size, f"items of {key!r}")
        elif item_type == STRING:
            self.skip_strings(length, key)
        else:
            for _ in range(length):
                self.skip_value(item_type, key, depth + 1)
        return ArraySummary(item_type=type_name, length=length)

    def skip_value(self, value_type: int, key: str, depth: int) -> None:
        if value_type in _SCALARS:
            self.skip(_SCALARS[value_type].size, f"value of {key!r}")
        elif value_type == STRING:
            self.skip(self.u64(f"length of a string in {key!r}"), f"a string in {key!r}")
        elif value_type == ARRAY:
            self.array(key, depth)
        else:
            raise GGUFError(f"{self.name}: metadata {key!r} has unknown value type {value_type}")
