"""Quantizing at build time through llama.cpp's real quantizer; the results run in llama.cpp."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ggufs import write_tiny_llama, write_wide_llama
from llama_cpp import Llama

from mdl.builder import quantize
from mdl.builder.build import BuildOptions, BuildResult, build_model
from mdl.spec import mediatypes as mt
from mdl.spec.errors import BuildError
from mdl.spec.gguf import read_gguf_file
from mdl.spec.modelfile import parse_modelfile
from mdl.spec.reference import Reference
from mdl.store.models import load_model
from mdl.store.store import Store

K_TYPES = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wide-f32/f16/bf16.gguf (rows of 256 and 512) and tiny.gguf (rows of 64)."""
    root = tmp_path_factory.mktemp("sources")
    for dtype in ("f32", "f16", "bf16"):
        write_wide_llama(root / f"wide-{dtype}.gguf", dtype=dtype)
    write_tiny_llama(root / "tiny.gguf")
    return root


def _build(
    store: Store, context: Path, source: str, qtype: str | None, tag: str = "q"
) -> BuildResult:
    modelfile = parse_modelfile(f"FROM {source}\n")
    options = BuildOptions(quantize=qtype)
    return build_model(store, modelfile, context, [Reference.parse(tag)], options)


def _weights(store: Store, tag: str = "q") -> Path:
    path = load_model(store, Reference.parse(tag)).path(mt.WEIGHTS_FILE)
    assert path is not None
    return path


def _complete(path: Path) -> tuple[str, int]:
    llm = Llama(model_path=str(path), n_ctx=128, n_threads=2, seed=1, verbose=False)
    try:
        out = llm.create_completion("hello", max_tokens=8, temperature=0.0)
        return str(out["choices"][0]["text"]), int(out["usage"]["completion_tokens"])
    finally:
        llm.close()


@pytest.mark.parametrize("label", [t.label for t in quantize.QUANT_TYPES.values()])
def test_each_type_quantizes_and_the_result_runs(label: str, sources: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    result = _build(store, sources, "./wide-f16.gguf", label)
    qtype = quantize.quant_type(label)
    weights = _weights(store)
    info = read_gguf_file(weights)
    assert result.config.quantization == info.quantization == qtype.name
    assert result.quantized is not None and not result.quantized.reused
    matrices = {t.ggml_type.name for t in info.tensors if len(t.shape) >= 2}
    main = qtype.name.rsplit("_", 1)[0] if qtype.name.count("_") == 2 else qtype.name
    assert main in matrices
    if qtype.block_size == 256:  # no silent fallback to a legacy type
        assert matrices <= K_TYPES
    assert weights.stat().st_size < (sources / "wide-f16.gguf").stat().st_size or label in (
        "f16",
        "bf16",
    )
    text, tokens = _complete(weights)
    assert tokens == 8 and text and text.isascii()


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_f32_and_bf16_sources_quantize_too(dtype: str, sources: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    result = _build(store, sources, f"./wide-{dtype}.gguf", "q4_K_M")
    assert result.config.quantization == "Q4_K_M" and result.config.precision is None
    assert _complete(_weights(store))[1] == 8


def test_f16_records_its_precision(sources: Path, tmp_path: Path) -> None:
    result = _build(Store(tmp_path / "store"), sources, "./wide-f32.gguf", "f16")
    assert (result.config.quantization, result.config.precision) == ("F16", "fp16")


def test_the_quantizer_gives_the_same_bytes_for_any_thread_count(
    sources: Path, tmp_path: Path
) -> None:
    qtype = quantize.quant_type("q4_K_M")
    digests = set()
    for threads in (1, 2, 4):
        out = tmp_path / f"out-{threads}.gguf"
        quantize.quantize(sources / "wide-f16.gguf", out, qtype, threads)
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    store = Store(tmp_path / "store")
    built = _build(store, sources, "./wide-f16.gguf", "q4_K_M")
    assert digests == {built.manifest.layers[0].digest.hex}


def test_a_rebuild_reuses_the_quantized_blob(sources: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first = _build(store, sources, "./wide-f16.gguf", "q8_0")
    assert first.quantized is not None and not first.quantized.reused
    assert first.bytes_copied == _weights(store).stat().st_size  # the quantized file only
    again = _build(store, sources, "./wide-f16.gguf", "q8_0")
    assert again.quantized is not None and again.quantized.reused
    assert again.bytes_copied == 0
    assert again.descriptor == first.descriptor
    shutil.copy(sources / "wide-f16.gguf", tmp_path / "renamed.gguf")  # keyed by content
    moved = _build(store, tmp_path, "./renamed.gguf", "q8_0", tag="moved")
    assert moved.quantized is not None and moved.quantized.reused
    assert moved.bytes_copied == 0
    store.remove([Reference.parse("q"), Reference.parse("moved")])  # frees the blob
    after = _build(store, sources, "./wide-f16.gguf", "q8_0")
    assert after.quantized is not None and not after.quantized.reused
    assert after.descriptor == first.descriptor


def test_another_type_is_another_blob(sources: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    q4 = _build(store, sources, "./wide-f16.gguf", "q4_0", tag="a")
    q5 = _build(store, sources, "./wide-f16.gguf", "q5_0", tag="b")
    assert q5.quantized is not None and not q5.quantized.reused
    assert q4.manifest.layers[0].digest != q5.manifest.layers[0].digest


def test_a_stored_model_quantizes_and_its_modelfile_rebuilds_it(
    sources: Path, tmp_path: Path
) -> None:
    store = Store(tmp_path / "store")
    _build(store, sources, "./wide-f16.gguf", None, tag="base")
    derived = _build(store, tmp_path, "base", "q5_K_M", tag="small")
    assert derived.config.quantization == "Q5_K_M"
    assert derived.quantized is not None
    assert (
        derived.quantized.source
        == load_model(store, Reference.parse("base")).files.get(mt.WEIGHTS_FILE).digest
    )  # type: ignore[union-attr]
    normalised = store.read_blob(derived.manifest.layers[-1]).decode()
    assert normalised.startswith(f"FROM {derived.manifest.layers[0].digest}\n")
    rebuilt = build_model(store, parse_modelfile(normalised), tmp_path, [])
    assert rebuilt.descriptor == derived.descriptor


def _store_state(store: Store) -> tuple[list[str], bytes, list[str]]:
    blobs = sorted(p.name for p in (store.root / "blobs" / "sha256").iterdir())
    ingest = sorted(p.name for p in (store.root / "ingest").iterdir())
    return blobs, (store.root / "index.json").read_bytes(), ingest


def test_refusals_name_the_file_and_type_and_write_nothing(sources: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    _build(store, sources, "./wide-f16.gguf", "q4_K_M", tag="small")
    before = _store_state(store)
    cases = [
        ("small", "q8_0", "Modelfile:1: FROM small: cannot quantize to q8_0: the weights are "
         "already quantized (Q4_K_M); quantize from F32, F16 or BF16 weights"),
        ("./tiny.gguf", "q4_K_M", "Modelfile:1: FROM ./tiny.gguf: cannot quantize to q4_K_M: "
         "tensor 'token_embd.weight' has rows of 64 elements, not a multiple of the 256 that "
         "q4_K_M needs"),
        ("./tiny.gguf", "q9_X", "--quantize q9_X: unknown type; valid types: q4_0, q4_1, q5_0, "
         "q5_1, q8_0, q2_K, q3_K_S, q3_K_M, q3_K_L, q4_K_S, q4_K_M, q5_K_S, q5_K_M, q6_K, f16, "
         "bf16"),
    ]  # fmt: skip
    for source, qtype, message in cases:
        with pytest.raises(BuildError) as refused:
            _build(store, sources, source, qtype, tag="bad")
        assert str(refused.value) == message
        assert _store_state(store) == before


def test_llama_cpp_alone_would_fall_back_silently(sources: Path, tmp_path: Path) -> None:
    """Why the rows are checked first: given rows of 64, llama.cpp writes other types and still
    stamps the file Q4_K_M."""
    out = tmp_path / "fallback.gguf"
    quantize.quantize(sources / "tiny.gguf", out, quantize.quant_type("q4_K_M"), 2)
    info = read_gguf_file(out)
    assert info.quantization == "Q4_K_M"
    assert {t.ggml_type.name for t in info.tensors if len(t.shape) >= 2} - K_TYPES


def test_a_quantizer_failure_is_a_build_error_with_llama_cpp_s_reason(
    sources: Path, tmp_path: Path
) -> None:
    with pytest.raises(BuildError) as failed:
        quantize.quantize(
            sources / "wide-f16.gguf", tmp_path / "no" / "dir" / "out.gguf",
            quantize.quant_type("q8_0"), 2,
        )  # fmt: skip
    assert str(failed.value).startswith(f"{sources / 'wide-f16.gguf'}: llama.cpp could not")
    assert "llama_model_quantize: failed to quantize:" in str(failed.value)


def test_the_builder_and_a_plain_build_do_not_import_llama_cpp(
    models_dir: Path, tmp_path: Path
) -> None:
    """llama_cpp loads only to quantize: the CLI starts fast, and mdl without its serve extra
    still builds."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mdl.builder.build import build_model\n"
        "from mdl.spec.modelfile import parse_modelfile\n"
        "from mdl.store.store import Store\n"
        f"build_model(Store(Path({str(tmp_path / 'store')!r})), parse_modelfile('FROM tiny.gguf'),"
        f" Path({str(models_dir)!r}), [])\n"
        "assert 'llama_cpp' not in sys.modules, 'llama_cpp was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
