"""A model as the store holds it: reference -> manifest -> config and files, read on demand."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.errors import StoreError
from mdl.spec.manifest import Index, Manifest
from mdl.spec.modelpack import ModelConfig, ModelFiles
from mdl.spec.reference import Reference
from mdl.spec.variants import Budget
from mdl.store.store import Store
from mdl.store.variants import Choice, memory_budget, stored_choice


@dataclass(frozen=True)
class StoredModel:
    store: Store
    descriptor: Descriptor
    manifest: Manifest
    config: ModelConfig
    files: ModelFiles

    def text(self, filepath: str) -> str | None:
        desc = self.files.get(filepath)
        return self.store.read_blob(desc).decode() if desc else None

    def json(self, filepath: str) -> Any:
        text = self.text(filepath)
        return json.loads(text) if text is not None else None

    def path(self, filepath: str) -> Path | None:
        """Where the file's blob lies, for readers that mmap it (llama.cpp); never copied."""
        desc = self.files.get(filepath)
        return self.store.blob_path(desc.digest) if desc else None

    @property
    def size(self) -> int:
        return self.descriptor.size + sum(blob.size for blob in self.manifest.blobs)


def load_manifest(store: Store, desc: Descriptor) -> StoredModel:
    doc = store.read_manifest(desc)
    if isinstance(doc, Index):
        raise StoreError(f"{desc.digest}: is an index of {len(doc.manifests)} models, not a model")
    if doc.config.media_type != mt.MODEL_CONFIG:
        raise StoreError(f"{desc.digest}: config {doc.config.media_type} is not a model config")
    config = ModelConfig.from_json(json.loads(store.read_blob(doc.config)))
    return StoredModel(store, desc, doc, config, ModelFiles.of(doc))


def load_model(
    store: Store,
    ref: Reference,
    *,
    variant: str | None = None,
    budget: Callable[[], Budget | None] = memory_budget,
) -> StoredModel:
    """The model a reference names now; an index of variants resolves to the one this machine
    uses (``variant``, else the best that fits ``budget()``; see store/variants.py), any
    other index to its first model manifest."""
    return load_manifest(store, model_descriptor(store, ref, variant=variant, budget=budget)[0])


def model_descriptor(
    store: Store,
    ref: Reference,
    *,
    variant: str | None = None,
    budget: Callable[[], Budget | None] = memory_budget,
) -> tuple[Descriptor, Choice | None]:
    """The model manifest ``ref`` resolves to, and the variant choice when it named an index."""
    desc = store.resolve(ref)
    if desc.media_type not in mt.INDEX_TYPES:
        return desc, None
    index = store.read_manifest(desc)
    assert isinstance(index, Index)
    choice = stored_choice(store, index, budget(), variant, str(ref))
    if choice is not None:
        return choice.chosen.descriptor, choice
    models = [m for m in index.manifests if m.media_type in mt.MANIFEST_TYPES]
    if not models:
        raise StoreError(f"{ref}: index {desc.digest} holds no model manifest")
    return models[0], None
