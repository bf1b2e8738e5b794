"""A model name -> what the store holds under it now: weights and adapter blob paths, template,
system prompt, parameters and seed messages.

Resolution reads the store on every request, so a re-tag or a newer pull takes effect on the
next one. What is costly to read (the GGUF headers) is cached by manifest digest, which names
immutable content. Adapters whose architecture differs from the weights' are refused here,
before llama.cpp sees them (a mismatched LoRA crashes it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from mdl.runtime.errors import BadRequest, LoadFailed, ModelMissing, OutOfMemory
from mdl.runtime.messages import Message
from mdl.runtime.options import check_options
from mdl.runtime.templates import DEFAULT_TEMPLATE
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import GGUFError, InvalidReference, MdlError, NotFound
from mdl.spec.footprint import Shape, shape_of
from mdl.spec.gguf import GGUFInfo, read_gguf_file
from mdl.spec.modelpack import ANNOTATION_TEMPLATE_FORMAT
from mdl.spec.parameters import parse_params_json
from mdl.spec.reference import Reference
from mdl.spec.variants import Budget, NoVariantFits, VariantError
from mdl.spec.whisper_ggml import is_whisper
from mdl.store.models import StoredModel, load_manifest, model_descriptor
from mdl.store.shards import weights_path, weights_size
from mdl.store.store import Store
from mdl.store.variants import memory_budget

_CACHE_SIZE = 64


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    """The reference as the store names it (``tiny:latest``), or the digest asked for."""
    digest: Digest
    """The manifest's digest: the identity of what is served."""
    stored: StoredModel
    weights: Path
    adapters: tuple[Path, ...]
    template: str
    template_format: str
    system: str | None
    params: Mapping[str, Any]
    messages: tuple[Message, ...]
    gguf: GGUFInfo
    modified_at: datetime
    variant: str | None = None
    """The quantization chosen when ``name`` is an index of variants."""

    @property
    def size(self) -> int:
        return self.stored.size

    @property
    def shape(self) -> Shape:
        files = weights_size(self.stored) + sum(a.stat().st_size for a in self.adapters)
        return shape_of(self.gguf, files)

    @property
    def speech(self) -> bool:
        """A whisper.cpp model: it transcribes audio and does nothing else."""
        return is_whisper(self.gguf)

    @property
    def pooling_mean(self) -> bool:
        """No pooling type in the GGUF (a generative model): embeddings are mean-pooled."""
        return f"{self.gguf.architecture}.pooling_type" not in self.gguf.metadata


class ModelResolver:
    """Thread-safe: the service calls it from worker threads."""

    def __init__(self, store: Store, budget: Callable[[], Budget | None] = memory_budget) -> None:
        self.store = store
        self.budget = budget
        """The memory an index's variant may need, asked at each request: a budget that
        changes changes the variant served."""
        self._cache: OrderedDict[Digest, ResolvedModel] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, name: str) -> ResolvedModel | None:
        """The model if its manifest was read before: one small read (the tag index), cheap
        enough for the event loop. None when ``resolve`` has to read more."""
        ref = parse_name(name)
        desc = self._descriptor(ref, name)
        if desc.media_type in mt.INDEX_TYPES:
            return None
        with self._lock:
            model = self._cache.get(desc.digest)
            if model is None:
                return None
            self._cache.move_to_end(desc.digest)
        label = _label(ref, desc.digest)
        return model if model.name == label else replace(model, name=label)

    def resolve(self, name: str) -> ResolvedModel:
        """BadRequest for a malformed name, ModelMissing if the store has none by that name."""
        model = self.cached(name)
        if model is not None:
            return model
        ref = parse_name(name)
        try:
            desc, choice = model_descriptor(self.store, ref, budget=self.budget)
        except NotFound as exc:
            raise ModelMissing(f"model '{name}' not found") from exc
        except NoVariantFits as exc:
            raise OutOfMemory(str(exc)) from exc
        except VariantError as exc:
            raise ModelMissing(str(exc)) from exc
        label = _label(ref, desc.digest)
        with self._lock:
            model = self._cache.get(desc.digest)
        if model is None:
            model = _read(load_manifest(self.store, desc), label)
            with self._lock:
                self._cache[model.digest] = model
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        variant = choice.chosen.quantization if choice else None
        return replace(model, name=label, variant=variant)

    def _descriptor(self, ref: Reference, name: str) -> Descriptor:
        try:
            return self.store.resolve(ref)
        except NotFound as exc:
            raise ModelMissing(f"model '{name}' not found") from exc


def _label(ref: Reference, digest: Digest) -> str:
    return str(ref) if ref.repository else str(digest)


def parse_name(name: str) -> Reference:
    if not isinstance(name, str) or not name:
        raise BadRequest("model is required")
    try:
        return Reference.parse(name)
    except InvalidReference as exc:
        raise BadRequest(str(exc)) from exc


def _read(stored: StoredModel, name: str) -> ResolvedModel:
    weights = stored.path(mt.WHISPER_WEIGHTS_FILE) or weights_path(stored)
    if weights is None:
        raise LoadFailed(f"{name}: the model has no {mt.WEIGHTS_FILE} layer to run")
    try:
        info = read_gguf_file(weights)
        adapters = tuple(stored.store.blob_path(d.digest) for _, d in stored.files.adapters)
        for (filepath, _), adapter in zip(stored.files.adapters, adapters, strict=True):
            _check_adapter(name, info, filepath, adapter)
        params_text = stored.text(mt.PARAMS_FILE)
        params = check_options(
            parse_params_json(params_text.encode()) if params_text else {}, f"{name}: params.json"
        )
        messages = tuple(
            Message(m["role"], m["content"]) for m in stored.json(mt.MESSAGES_FILE) or []
        )
        template, template_format = _template(stored, info)
        system = stored.text(mt.SYSTEM_FILE)
    except LoadFailed:
        raise
    except BadRequest as exc:  # a params.json this runtime cannot use
        raise LoadFailed(str(exc)) from exc
    except (MdlError, OSError, KeyError, TypeError, ValueError) as exc:  # ValueError: not UTF-8
        raise LoadFailed(f"{name}: cannot read the model: {exc}") from exc
    return ResolvedModel(
        name=name,
        digest=stored.descriptor.digest,
        stored=stored,
        weights=weights,
        adapters=adapters,
        template=template,
        template_format=template_format,
        system=system,
        params=params,
        messages=messages,
        gguf=info,
        modified_at=stored.store.modified_at(stored.descriptor.digest),
    )


def _template(stored: StoredModel, info: GGUFInfo) -> tuple[str, str]:
    """The template layer; else the GGUF's own Jinja template; else Ollama's ``{{ .Prompt }}``."""
    layer = stored.files.get(mt.TEMPLATE_FILE)
    text = stored.text(mt.TEMPLATE_FILE)
    if layer is not None and text is not None:
        return text, layer.annotations.get(ANNOTATION_TEMPLATE_FORMAT, "go")
    if info.chat_template:
        return info.chat_template, "jinja"
    return DEFAULT_TEMPLATE, "go"


def _check_adapter(name: str, weights: GGUFInfo, filepath: str, path: Path) -> None:
    try:
        adapter = read_gguf_file(path)
    except GGUFError as exc:
        raise LoadFailed(f"{name}: {filepath}: {exc}") from exc
    if not adapter.is_adapter:
        raise LoadFailed(f"{name}: {filepath} is not a LoRA adapter GGUF")
    if adapter.architecture != weights.architecture:
        raise LoadFailed(
            f"{name}: {filepath} is an adapter for architecture {adapter.architecture}, "
            f"but the weights are {weights.architecture}; refusing to load it"
        )
