"""A built model is usable as stored: llama.cpp maps the weights and adapter blobs in place."""

from __future__ import annotations

import shutil
from pathlib import Path

from llama_cpp import Llama

from mdl.builder.build import build_model
from mdl.spec import mediatypes as mt
from mdl.spec.modelfile import parse_modelfile
from mdl.spec.reference import Reference
from mdl.store.models import load_model
from mdl.store.store import Store


def _generate(model_path: Path, lora: Path | None = None) -> str:
    kwargs = {"lora_path": str(lora)} if lora else {}
    llm = Llama(model_path=str(model_path), n_ctx=256, n_threads=2, seed=1, verbose=False, **kwargs)
    try:
        out = llm.create_completion("hello", max_tokens=12, temperature=0.0, seed=1)
        return str(out["choices"][0]["text"])
    finally:
        llm.close()


def test_stored_blobs_load_and_generate(tmp_path: Path, models_dir: Path) -> None:
    shutil.copy(models_dir / "tiny.gguf", tmp_path / "tiny.gguf")
    shutil.copy(models_dir / "lora.gguf", tmp_path / "lora.gguf")
    modelfile = parse_modelfile("FROM ./tiny.gguf\nADAPTER ./lora.gguf\n")
    store = Store(tmp_path / "store")
    build_model(store, modelfile, tmp_path, [Reference.parse("tiny")])
    model = load_model(store, Reference.parse("tiny"))
    weights = model.path(mt.WEIGHTS_FILE)
    adapter = model.store.blob_path(model.files.adapters[0][1].digest)
    assert weights is not None and weights.suffix == ""
    base = _generate(weights)
    assert base == _generate(models_dir / "tiny.gguf")
    assert base.isascii() and len(base) > 0
    assert _generate(weights, adapter) != base
