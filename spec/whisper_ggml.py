"""Read the header of a whisper.cpp model file (the legacy ggml format, not GGUF).

whisper.cpp's files (``ggml-tiny.en.bin`` …, written by its ``models/convert-*.py``) are, in
little-endian int32s unless said::

    magic 0x67676d6c ("lmgg" on disk)
    n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer
    n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype
    n_mel n_fft, then n_mel * n_fft float32 (the mel filter bank)
    token count, then per token: u32 length + bytes
    until the end: n_dims, name length, ggml type, ne[n_dims], name, tensor data (no padding)

The header becomes a ``GGUFInfo`` (architecture ``whisper``, the hparams as ``whisper.*``
metadata, the tensors) so that build, show, list and the memory estimate treat it like any
weights. As with GGUF, every malformed input raises ``GGUFError`` naming the file.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import BinaryIO

from mdl.spec.errors import GGUFError
from mdl.spec.gguf import GGML_TYPES, GGUFInfo, MetadataValue, TensorInfo

MAGIC = struct.pack("<I", 0x67676D6C)
ARCHITECTURE = "whisper"
FORMAT = "ggml"
"""ModelPack ``config.format`` of these files."""

HPARAMS = (
    "vocab_size", "audio.context_length", "audio.embedding_length", "audio.head_count",
    "audio.block_count", "text.context_length", "text.embedding_length", "text.head_count",
    "text.block_count", "mel_count",
)  # fmt: skip
_MULTILINGUAL_VOCAB = 51865
_MAX_DIMS = 4
_MAX_NAME = 1024

# whisper.cpp's g_lang, in id order; the large-v3 vocabulary (51866) adds "yue".
LANGUAGES = (
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv",
    "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
    "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr",
    "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
    "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu",
    "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
    "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue",
)  # fmt: skip

NAMES = (
    "english", "chinese", "german", "spanish", "russian", "korean", "french", "japanese",
    "portuguese", "turkish", "polish", "catalan", "dutch", "arabic", "swedish", "italian",
    "indonesian", "hindi", "finnish", "vietnamese", "hebrew", "ukrainian", "greek", "malay",
    "czech", "romanian", "danish", "hungarian", "tamil", "norwegian", "thai", "urdu", "croatian",
    "bulgarian", "lithuanian", "latin", "maori", "malayalam", "welsh", "slovak", "telugu",
    "persian", "latvian", "bengali", "serbian", "azerbaijani", "slovenian", "kannada", "estonian",
    "macedonian", "breton", "basque", "icelandic", "armenian", "nepali", "mongolian", "bosnian",
    "kazakh", "albanian", "swahili", "galician", "marathi", "punjabi", "sinhala", "khmer",
    "shona", "yoruba", "somali", "afrikaans", "occitan", "georgian", "belarusian", "tajik",
    "sindhi", "gujarati", "amharic", "yiddish", "lao", "uzbek", "faroese", "haitian creole",
    "pashto", "turkmen", "nynorsk", "maltese", "sanskrit", "luxembourgish", "myanmar", "tibetan",
    "tagalog", "malagasy", "assamese", "tatar", "hawaiian", "lingala", "hausa", "bashkir",
    "javanese", "sundanese", "cantonese",
)  # fmt: skip
"""The English name of each language in ``LANGUAGES`` (as OpenAI's ``verbose_json`` gives it)."""


def is_whisper(info: GGUFInfo) -> bool:
    return info.architecture == ARCHITECTURE


def languages(n_vocab: int) -> tuple[str, ...]:
    """What a model with this vocabulary transcribes: English only below 51865 tokens."""
    if n_vocab < _MULTILINGUAL_VOCAB:
        return ("en",)
    return LANGUAGES if n_vocab > _MULTILINGUAL_VOCAB else LANGUAGES[:-1]


def read_whisper_info(f: BinaryIO, size: int, name: str) -> GGUFInfo:
    """Parse the file ``f`` (``size`` bytes), positioned at its start or just past the magic."""
    r = _Reader(f, size, name)
    r.offset = f.tell()
    if r.offset == 0 and r.read(4, "magic") != MAGIC:
        raise GGUFError(f"{name}: not a whisper.cpp ggml file")
    values = r.ints(len(HPARAMS) + 1, "hparams")
    if any(v <= 0 for v in values[:-1]) or values[-1] < 0:
        raise GGUFError(f"{name}: whisper hparams out of range: {values}")
    n_mel, n_fft = r.ints(2, "mel filters")
    r.skip(4 * _count(n_mel, name) * _count(n_fft, name), "mel filters")
    (tokens,) = r.ints(1, "vocabulary")
    for _ in range(_count(tokens, name)):
        (length,) = r.ints(1, "token")
        r.skip(_count(length, name), "token")
    data_offset = r.offset
    tensors = []
    seen: set[str] = set()
    while r.offset < size:
        tensors.append(_tensor(r, data_offset, seen))
    if not tensors:
        raise GGUFError(f"{name}: whisper model without tensors")
    n_vocab = values[0]
    metadata: dict[str, MetadataValue] = {
        "general.architecture": ARCHITECTURE,
        "general.file_type": values[-1] % 1000,  # GGML_QNT_VERSION_FACTOR
        **{f"{ARCHITECTURE}.{key}": v for key, v in zip(HPARAMS, values, strict=False)},
        f"{ARCHITECTURE}.languages": languages(n_vocab),
    }
    return GGUFInfo(
        version=0,
        metadata=MappingProxyType(metadata),
        tensors=tuple(tensors),
        alignment=1,
        data_offset=data_offset,
        data_end=r.offset,
    )


def estimate_bytes(info: GGUFInfo, file_bytes: int) -> int:
    """Memory once loaded, erring high: the weights, the decoder's self- and cross-attention
    caches (f16), and whisper.cpp's compute buffers: the decoder's logits (f32, the whole text
    context by the vocabulary: 93 MB for every size of model) and the encoder's, which scale
    with its width."""
    h = hparams(info)
    text_state, layers = h.get("text.embedding_length", 0), h.get("text.block_count", 0)
    text_ctx, vocab = h.get("text.context_length", 0), h.get("vocab_size", 0)
    audio_ctx, audio_state = h.get("audio.context_length", 0), h.get("audio.embedding_length", 0)
    caches = 2 * 2 * layers * text_state * (text_ctx + audio_ctx)
    compute = 4 * text_ctx * vocab + 32 * audio_ctx * audio_state * 4 + (16 << 20)
    return file_bytes + caches + compute


def hparams(info: GGUFInfo) -> Mapping[str, int]:
    """The hparams of a whisper header, by their names in ``HPARAMS``."""
    meta = info.metadata
    return {k: v for k in HPARAMS if isinstance(v := meta.get(f"{ARCHITECTURE}.{k}"), int)}


def _tensor(r: _Reader, data_offset: int, seen: set[str]) -> TensorInfo:
    n_dims, length, ttype = r.ints(3, "tensor header")
    if not 0 < n_dims <= _MAX_DIMS or not 0 < length <= _MAX_NAME:
        raise GGUFError(f"{r.name}: bad tensor header at byte {r.offset - 12}")
    shape = tuple(r.ints(n_dims, "tensor shape"))
    tensor_name = r.read(length, "tensor name").decode(errors="replace")
    ggml_type = GGML_TYPES.get(ttype)
    if ggml_type is None or any(d <= 0 for d in shape) or tensor_name in seen:
        raise GGUFError(f"{r.name}: tensor {tensor_name!r}: bad type, shape or duplicate")
    seen.add(tensor_name)
    info = TensorInfo(tensor_name, shape, ggml_type, r.offset - data_offset)
    r.skip(info.n_bytes, f"tensor {tensor_name}")
    return info


def _count(n: int, name: str) -> int:
    if n < 0:
        raise GGUFError(f"{name}: negative count {n} in the whisper header")
    return n


class _Reader:
    """Buffered sequential reads, each checked against the file size."""

    def __init__(self, f: BinaryIO, size: int, name: str) -> None:
        self.f = f
        self.size = size
        self.name = name
        self.offset = 0

    def read(self, n: int, what: str) -> bytes:
        self._check(n, what)
        data = self.f.read(n)
        if len(data) != n:
            raise GGUFError(f"{self.name}: truncated whisper file: {what} at byte {self.offset}")
        self.offset += n
        return data

    def ints(self, count: int, what: str) -> list[int]:
        return list(struct.unpack(f"<{count}i", self.read(4 * count, what)))

    def skip(self, n: int, what: str) -> None:
        self._check(n, what)
        self.f.seek(n, 1)
        self.offset += n

    def _check(self, n: int, what: str) -> None:
        if self.offset + n > self.size:
            raise GGUFError(
                f"{self.name}: truncated whisper file: {what} at byte {self.offset} needs {n} "
                f"bytes, only {self.size - self.offset} left"
            )
