"""Modelfile + files -> layers, config, manifest, tags: the whole of ``mdl build``.

A build first resolves and checks everything it will write (paths, GGUF headers, adapter
architectures), so a bad Modelfile writes nothing. Then it stages every blob under ``ingest/``,
publishes them all, and tags last, holding the store's shared lock throughout so no sweep frees
a blob between publish and tag. The same inputs give the same manifest digest: nothing depends on
the time unless ``created`` is given.

With ``quantize``, the weights layer is the source quantized by llama.cpp (see quantize.py),
written to a temporary file under ``ingest/`` and ingested from there; the source itself is not
stored. The result is remembered by (source digest, type, quantizer version), so a rebuild finds
the blob in the store and quantizes nothing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from mdl.builder import filecache, quantize
from mdl.builder.quantize import QuantType
from mdl.builder.recipe import Recipe, recipe_for
from mdl.builder.sources import GGUFSource
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import BuildError
from mdl.spec.gguf import GGUFInfo, read_gguf_file
from mdl.spec.manifest import Manifest, canonical_json, encode
from mdl.spec.modelfile import Modelfile
from mdl.spec.modelpack import (
    ANNOTATION_TEMPLATE_FORMAT,
    ModelConfig,
    adapter_filepath,
    config_from_gguf,
    model_manifest,
    weights_filepath,
)
from mdl.spec.reference import Reference
from mdl.store import layout
from mdl.store.ingest import Ingest
from mdl.store.store import Store

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BuildOptions:
    created: str | None = None
    """RFC 3339 time for createdAt and org.opencontainers.image.created; None keeps builds
    reproducible."""
    labels: dict[str, str] = field(default_factory=dict)
    """Extra manifest annotations (org.opencontainers.image.version, .revision, .source, …)."""
    quantize: str | None = None
    """Quantize the weights to this type (``q4_K_M``, ``q8_0``, ``f16``, …; see quantize.py)."""


@dataclass(frozen=True)
class Quantized:
    """What ``quantize`` did: the source's digest, the type, and whether a blob quantized
    earlier was reused (then llama.cpp did not run)."""

    source: Digest
    type: str
    reused: bool


@dataclass(frozen=True)
class BuildResult:
    descriptor: Descriptor
    manifest: Manifest
    config: ModelConfig
    tags: tuple[Reference, ...]
    bytes_copied: int
    quantized: Quantized | None = None
    sources: Mapping[str, Digest] = field(default_factory=dict)
    """Each GGUF the Modelfile named (``FROM ./x.gguf``, ``ADAPTER …``) and its digest."""
    base: Digest | None = None
    """The manifest of the stored model the Modelfile started FROM, if it named one."""


def build_model(
    store: Store,
    modelfile: Modelfile,
    context: Path,
    tags: Sequence[Reference],
    options: BuildOptions | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    options = options or BuildOptions()
    qtype = quantize.quant_type(options.quantize) if options.quantize else None
    quantizer = quantize.quantizer_version() if qtype else ""
    with store.writing():
        recipe = recipe_for(store, modelfile, context)
        if qtype:
            base = modelfile.from_
            name = f"{modelfile.path}:{base.line}: FROM {base.value}"
            quantize.check_quantizable(recipe.weights.info, qtype, name)
            if recipe.weights.shards:
                raise BuildError(f"{name}: cannot quantize a split GGUF; merge its shards first")
        with ExitStack() as staged:
            writer = _Writer(store, staged, progress)
            if qtype:
                weights, info = writer.stage_quantized(recipe.weights, qtype, quantizer)
            else:
                weights = writer.stage_gguf(recipe.weights, weights_filepath(recipe.weights.info))
                info = None
            layers = _write_layers(writer, recipe, weights)
            config = _config(info or recipe.weights.info, layers, options)
            config_desc = writer.stage_bytes(mt.MODEL_CONFIG, canonical_json(config.to_json()))
            annotations = dict(options.labels)
            if options.created:
                annotations[mt.ANNOTATION_CREATED] = options.created
            manifest = model_manifest(config_desc, layers, annotations)
            desc = writer.stage_bytes(mt.OCI_MANIFEST, encode(manifest))
            writer.publish()
        for ref in tags:
            store.tag(desc, ref)
    named = {
        f"{i.command.upper()} {i.value}": writer.sources[i.line]
        for i in modelfile.instructions
        if i.command in ("from", "adapter", "draft") and i.line in writer.sources
    }
    return BuildResult(
        desc, manifest, config, tuple(tags), writer.bytes_copied, writer.quantized, named,
        recipe.base,
    )  # fmt: skip


def _write_layers(writer: _Writer, recipe: Recipe, weights: Descriptor) -> list[Descriptor]:
    adapters: list[Descriptor] = []
    for source in recipe.adapters:
        adapter = writer.stage_gguf(source, None)
        if adapter.digest not in {a.digest for a in adapters}:
            adapters.append(adapter)
    shards = [writer.stage_gguf(source, filepath) for filepath, source in recipe.shard_files()]
    layers = [weights, *shards, *adapters]
    if recipe.projector:
        layers.append(writer.stage_gguf(recipe.projector, mt.PROJECTOR_FILE))
    draft = writer.stage_gguf(recipe.draft, mt.DRAFT_FILE) if recipe.draft else None
    if draft:
        layers.append(draft)
    modelfile = recipe.normalised_modelfile(
        weights.digest, [a.digest for a in adapters], draft.digest if draft else None
    )
    texts: list[tuple[str, str, bytes | None, dict[str, str]]] = [
        (
            mt.MODEL_WEIGHT_CONFIG,
            mt.TEMPLATE_FILE,
            recipe.template.encode() if recipe.template is not None else None,
            {ANNOTATION_TEMPLATE_FORMAT: recipe.template_format} if recipe.template else {},
        ),
        (mt.MODEL_WEIGHT_CONFIG, mt.SYSTEM_FILE, _encoded(recipe.system), {}),
        (mt.MODEL_WEIGHT_CONFIG, mt.PARAMS_FILE, recipe.params_json(), {}),
        (mt.MODEL_WEIGHT_CONFIG, mt.MESSAGES_FILE, recipe.messages_json(), {}),
    ]
    texts += [
        (mt.MODEL_DOC, filepath, text.encode(), {}) for filepath, text in recipe.license_files()
    ]
    texts.append((mt.MODEL_DOC, mt.MODELFILE_FILE, modelfile.encode(), {}))
    for media_type, filepath, data, extra in texts:
        if data is not None:
            annotations = {mt.ANNOTATION_FILEPATH: filepath, **extra}
            layers.append(writer.stage_bytes(media_type, data, annotations))
    return layers


def _encoded(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _config(weights: GGUFInfo, layers: list[Descriptor], options: BuildOptions) -> ModelConfig:
    return config_from_gguf(
        weights,
        layers,
        version=options.labels.get("org.opencontainers.image.version"),
        created=options.created,
    )


class _Writer:
    """Stages blobs under ingest/ and publishes them together, or leaves nothing behind."""

    def __init__(self, store: Store, stack: ExitStack, progress: Progress | None) -> None:
        self.store = store
        self.stack = stack
        self.progress = progress
        self.staged: list[Ingest] = []
        self.bytes_copied = 0
        self.quantized: Quantized | None = None
        self.home = store.root.parent
        self.sources: dict[int, Digest] = {}
        """Modelfile line -> digest of the source file that line named (provenance)."""

    def stage_gguf(self, source: GGUFSource, filepath: str | None) -> Descriptor:
        """Stage a GGUF file; ``filepath`` None names it after its digest (an adapter), so the
        same content gets the same name however its file was called."""
        stat = source.path.stat()  # before reading: what the file cache will remember
        size = stat.st_size
        digest = source.digest or filecache.lookup(self.home, source.path, stat)
        if not (digest and self.store.has_blob(digest)):
            digest, size = self._ingest_file(source.path, filepath or "adapter", size)
            filecache.remember(self.home, source.path, digest, stat)
        if source.line:
            self.sources[source.line] = digest
        return _weight(digest, size, filepath)

    def stage_quantized(
        self, source: GGUFSource, qtype: QuantType, quantizer: str
    ) -> tuple[Descriptor, GGUFInfo]:
        """Stage the weights quantized to ``qtype``, or find them quantized by an earlier build.

        The header is read back from the file as written, so the config tells what it holds.
        """
        origin = self._source_digest(source)
        if source.line:
            self.sources[source.line] = origin
        key = quantize.cache_key(origin, qtype, quantizer)
        cached = filecache.lookup_derived(self.home, key)
        if cached and self.store.has_blob(cached):
            blob = self.store.blob_path(cached)
            self.quantized = Quantized(origin, qtype.name, reused=True)
            return _weight(cached, blob.stat().st_size, mt.WEIGHTS_FILE), read_gguf_file(blob)
        temp = layout.ingest_file(self.store.root, f"{uuid.uuid4().hex}.quantize.tmp")
        self.stack.callback(temp.unlink, missing_ok=True)
        label, size = f"quantize to {qtype.label}", source.path.stat().st_size
        if self.progress:
            self.progress(label, 0, size)
        quantize.quantize(source.path, temp, qtype, quantize.threads())
        if self.progress:
            self.progress(label, size, size)
        info = read_gguf_file(temp)
        quantize.check_written(info, qtype, source.path)
        digest, written = self._ingest_file(temp, mt.WEIGHTS_FILE, temp.stat().st_size)
        temp.unlink()
        filecache.remember_derived(self.home, key, digest)
        self.quantized = Quantized(origin, qtype.name, reused=False)
        return _weight(digest, written, mt.WEIGHTS_FILE), info

    def _source_digest(self, source: GGUFSource) -> Digest:
        """A source's digest without copying it: known, remembered, or hashed (and remembered)."""
        stat = source.path.stat()
        digest = source.digest or filecache.lookup(self.home, source.path, stat)
        if digest is None:
            with open(source.path, "rb") as file:
                digest = Digest("sha256", hashlib.file_digest(file, "sha256").hexdigest())
            filecache.remember(self.home, source.path, digest, stat)
        return digest

    def _ingest_file(self, path: Path, label: str, size: int) -> tuple[Digest, int]:
        ingest = self.stack.enter_context(self.store.ingest())
        report = self.progress
        with open(path, "rb") as file:
            ingest.copy_file(file, (lambda n: report(label, n, size)) if report else None)
        digest = ingest.seal()
        self.staged.append(ingest)
        self.bytes_copied += ingest.offset
        return digest, ingest.offset

    def stage_bytes(
        self, media_type: str, data: bytes, annotations: dict[str, str] | None = None
    ) -> Descriptor:
        desc = Descriptor.for_bytes(media_type, data, annotations)
        if not self.store.exists(desc):
            ingest = self.stack.enter_context(self.store.ingest(desc))
            ingest.write(data)
            ingest.seal()
            self.staged.append(ingest)
        return desc

    def publish(self) -> None:
        for ingest in self.staged:
            ingest.publish()


def _weight(digest: Digest, size: int, filepath: str | None) -> Descriptor:
    name = filepath or adapter_filepath(digest)
    return Descriptor(mt.MODEL_WEIGHT, digest, size, {mt.ANNOTATION_FILEPATH: name})


def head_json(desc: Descriptor, tags: Sequence[Reference]) -> dict[str, object]:
    """The keys every ``mdl build --json`` starts with: what was built and its names."""
    return {
        "digest": str(desc.digest),
        "size": desc.size,
        "media_type": desc.media_type,
        "tags": [str(t) for t in tags],
    }


def build_json(result: BuildResult) -> dict[str, object]:
    """What ``mdl build --json`` prints: stable keys for CI."""
    return {
        **head_json(result.descriptor, result.tags),
        "config": json.loads(canonical_json(result.config.to_json())),
        "layers": [
            {
                "digest": str(layer.digest),
                "size": layer.size,
                "media_type": layer.media_type,
                "filepath": layer.annotations.get(mt.ANNOTATION_FILEPATH),
            }
            for layer in result.manifest.layers
        ],
        "bytes_copied": result.bytes_copied,
        "quantized": {
            "from": str(result.quantized.source),
            "type": result.quantized.type,
            "reused": result.quantized.reused,
        }
        if result.quantized
        else None,
    }
