"""``mdl build --quantize``: llama.cpp's own quantizer, as llama-cpp-python exports it.

Only the types that need no importance matrix. Everything is checked before llama.cpp runs,
because its quantizer is lenient where mdl must not be: it quietly gives a tensor whose rows do
not fit a K-quant's 256-element blocks another type (``required fallback quantization``) and
still stamps the file with the type asked for. ``llama_cpp`` is imported here only, and only when
a file is really quantized, so the CLI starts fast and the builder imports without it.

The quantizer is deterministic for any thread count (checked with 1, 2 and 4 threads; the tests
and the benchmark check it again), so the same source and type always give the same blob.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import MappingProxyType

from mdl.spec.digest import Digest
from mdl.spec.errors import BuildError
from mdl.spec.gguf import FILE_TYPES, GGUFInfo, TensorInfo
from mdl.spec.whisper_ggml import is_whisper

SOURCE_TYPES = ("F32", "F16", "BF16")
"""Tensor types a quantizer reads; quantizing an already quantized file would lose twice."""
_LLAMA_CPP = "llama-cpp-python"


@dataclass(frozen=True)
class QuantType:
    """A target of ``--quantize``: a llama_ftype and the row multiple its tensors need."""

    ftype: int
    block_size: int

    @property
    def name(self) -> str:
        """llama.cpp's name, as ``general.file_type`` reads back ("Q4_K_M")."""
        return FILE_TYPES[self.ftype]

    @property
    def label(self) -> str:
        """The spelling Ollama's ``--quantize`` uses ("q4_K_M", "f16")."""
        digit = next(i for i, c in enumerate(self.name) if c.isdigit())
        return self.name[:digit].lower() + self.name[digit:]


# llama_ftype ids (see FILE_TYPES) and the block each needs: 256 for K-quants, 32 for the
# legacy quants, 1 for the float types. IQ* and Q2_K_S are left out: they need an imatrix.
QUANT_TYPES: Mapping[str, QuantType] = MappingProxyType(
    {
        t.label.lower(): t
        for t in (
            QuantType(2, 32),  # Q4_0
            QuantType(3, 32),  # Q4_1
            QuantType(8, 32),  # Q5_0
            QuantType(9, 32),  # Q5_1
            QuantType(7, 32),  # Q8_0
            QuantType(10, 256),  # Q2_K
            QuantType(11, 256),  # Q3_K_S
            QuantType(12, 256),  # Q3_K_M
            QuantType(13, 256),  # Q3_K_L
            QuantType(14, 256),  # Q4_K_S
            QuantType(15, 256),  # Q4_K_M
            QuantType(16, 256),  # Q5_K_S
            QuantType(17, 256),  # Q5_K_M
            QuantType(18, 256),  # Q6_K
            QuantType(1, 1),  # F16
            QuantType(32, 1),  # BF16
        )
    }
)


def quant_type(name: str) -> QuantType:
    """The type ``--quantize NAME`` asks for, in any letter case."""
    found = QUANT_TYPES.get(name.lower())
    if found is None:
        valid = ", ".join(t.label for t in QUANT_TYPES.values())
        raise BuildError(f"--quantize {name}: unknown type; valid types: {valid}")
    return found


def check_quantizable(info: GGUFInfo, qtype: QuantType, name: str) -> None:
    """Refuse a source the quantizer would degrade or silently work around."""
    refused = f"{name}: cannot quantize to {qtype.label}"
    if is_whisper(info):
        raise BuildError(f"{refused}: llama.cpp quantizes GGUF, not whisper.cpp's ggml files")
    if any(t.ggml_type.name not in SOURCE_TYPES for t in info.tensors):
        raise BuildError(
            f"{refused}: the weights are already quantized ({info.quantization}); "
            "quantize from F32, F16 or BF16 weights"
        )
    for tensor in info.tensors:
        if _quantized(tensor) and tensor.shape[0] % qtype.block_size:
            raise BuildError(
                f"{refused}: tensor {tensor.name!r} has rows of {tensor.shape[0]} elements, "
                f"not a multiple of the {qtype.block_size} that {qtype.label} needs"
            )


def _quantized(tensor: TensorInfo) -> bool:
    """The tensors llama.cpp quantizes: matrices named ``*weight`` (norms and biases stay)."""
    return len(tensor.shape) >= 2 and tensor.name.endswith("weight")


def check_written(info: GGUFInfo, qtype: QuantType, path: Path) -> None:
    """The file llama.cpp wrote is of the type asked for, read back from its header."""
    if info.file_type != qtype.ftype:
        raise BuildError(
            f"{path}: llama.cpp wrote {info.quantization}, not the {qtype.name} asked for"
        )


def quantizer_version() -> str:
    """What a cached quantization is valid for: the llama-cpp-python release (which pins the
    llama.cpp it builds), read without importing it."""
    try:
        return f"{_LLAMA_CPP} {metadata.version(_LLAMA_CPP)}"
    except metadata.PackageNotFoundError:
        raise _missing() from None


def cache_key(source: Digest, qtype: QuantType, quantizer: str) -> str:
    return f"quantize {source} {qtype.name} {quantizer}"


def quantize(source: Path, target: Path, qtype: QuantType, threads: int) -> None:
    """Write ``source`` quantized to ``qtype`` at ``target`` with ``threads`` threads."""
    try:
        import llama_cpp
    except ImportError:
        raise _missing() from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = qtype.ftype
    with _errors_logged() as errors:
        status = llama_cpp.llama_model_quantize(
            os.fsencode(source), os.fsencode(target), ctypes.byref(params)
        )
    if status:
        reason = " ".join(errors).strip() or f"llama_model_quantize returned {status}"
        raise BuildError(f"{source}: llama.cpp could not quantize to {qtype.label}: {reason}")


def threads() -> int:
    """One quantizer thread per core this process may use."""
    return len(os.sched_getaffinity(0))


@contextmanager
def _errors_logged() -> Iterator[list[str]]:
    """Keep llama.cpp's error messages (for the BuildError) and drop its chatter on stderr.

    The log callback is process-wide; llama-cpp-python's own one is put back afterwards.
    """
    import llama_cpp
    from llama_cpp import _logger

    errors: list[str] = []

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def keep(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level == _LOG_ERROR:
            errors.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(keep, ctypes.c_void_p(0))
    try:
        yield errors
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


_LOG_ERROR = 4  # GGML_LOG_LEVEL_ERROR in ggml.h (llama_cpp/_logger.py still has the old enum)


def _missing() -> BuildError:
    return BuildError(
        f"--quantize needs {_LLAMA_CPP}: install mdl with the serve extra, pip install 'mdl[serve]'"
    )
