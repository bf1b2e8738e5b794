"""The whisper.cpp ggml header reader, on files the tests' generator writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from whisper_models import N_STATE, N_VOCAB_EN, N_VOCAB_MULTI, write_tiny_whisper

from mdl.spec.errors import GGUFError
from mdl.spec.gguf import read_gguf_file
from mdl.spec.modelpack import config_from_gguf
from mdl.spec.whisper_ggml import LANGUAGES, hparams, is_whisper, languages


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_whisper(tmp_path_factory.mktemp("whisper") / "ggml-tiny.en.bin")


def test_header_reads_as_whisper_weights(tiny: Path) -> None:
    info = read_gguf_file(tiny)
    assert is_whisper(info) and info.quantization == "F16"
    assert hparams(info)["audio.embedding_length"] == N_STATE
    assert hparams(info)["vocab_size"] == N_VOCAB_EN
    assert info.metadata["whisper.languages"] == ("en",)
    assert info.data_end == tiny.stat().st_size
    assert sum(t.n_bytes for t in info.tensors) < info.data_end - info.data_offset
    names = {t.name for t in info.tensors}
    assert {"encoder.conv1.weight", "decoder.token_embedding.weight"} <= names


def test_config_says_ggml_audio_to_text(tiny: Path) -> None:
    doc = config_from_gguf(read_gguf_file(tiny), []).to_json()["config"]
    assert doc["format"] == "ggml" and doc["architecture"] == "whisper"
    assert doc["capabilities"] == {"input_types": ["audio"], "output_types": ["text"]}
    assert doc["paramSize"].endswith("M") and doc["precision"] == "fp16"


def test_languages_follow_the_vocabulary() -> None:
    assert languages(N_VOCAB_EN) == ("en",)
    assert len(languages(N_VOCAB_MULTI)) == 99 and languages(51866)[-1] == "yue"
    assert len(LANGUAGES) == 100


@pytest.mark.parametrize("cut", [10, 50, 400_000, -7])
def test_truncated_file_is_refused_by_name(tiny: Path, tmp_path: Path, cut: int) -> None:
    data = tiny.read_bytes()
    broken = tmp_path / "broken.bin"
    broken.write_bytes(data[:cut])
    with pytest.raises(GGUFError, match=r"broken\.bin"):
        read_gguf_file(broken)
