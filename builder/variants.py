"""``mdl build --variants`` and ``mdl index create``: models grouped under one reference as an
OCI image index of variants, each entry annotated with what choosing it needs.

The memory figure is the runtime's own: ``spec.footprint`` over the weights' GGUF header and
the files it maps (weights and adapters), at the ``num_ctx`` and ``num_batch`` the model loads
with by default (its params.json, else 4096 or the trained length if smaller). The index lists
the variants best first, so the same models give the same index digest in any order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mdl.builder.build import BuildOptions, BuildResult, Progress, build_model, head_json
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.errors import BuildError
from mdl.spec.footprint import DEFAULT_NUM_PARALLEL, context_of, estimate_bytes, shape_of
from mdl.spec.gguf import read_gguf_file
from mdl.spec.manifest import Index, encode
from mdl.spec.modelfile import Modelfile
from mdl.spec.parameters import parse_params_json
from mdl.spec.reference import Reference
from mdl.spec.variants import Variant, variant_index
from mdl.store.models import load_manifest
from mdl.store.shards import weights_size
from mdl.store.store import Store


@dataclass(frozen=True)
class IndexResult:
    descriptor: Descriptor
    index: Index
    variants: tuple[Variant, ...]
    tags: tuple[Reference, ...]
    builds: tuple[BuildResult, ...] = ()


def describe(store: Store, desc: Descriptor) -> Variant:
    """The variant a stored model manifest makes: its annotations, read from the model."""
    model = load_manifest(store, desc)
    weights = model.files.get(mt.WEIGHTS_FILE)
    if weights is None:
        raise BuildError(f"{desc.digest}: the model has no {mt.WEIGHTS_FILE} layer")
    info = read_gguf_file(store.blob_path(weights.digest))
    mapped = weights_size(model) + sum(adapter.size for _, adapter in model.files.adapters)
    params_text = model.text(mt.PARAMS_FILE)
    params = parse_params_json(params_text.encode()) if params_text else {}
    values = {k: v for k, v in params.items() if k in ("num_ctx", "num_batch") and type(v) is int}
    num_ctx, num_batch = context_of(values, info.context_length)
    return Variant(
        descriptor=desc.with_annotations({}),
        quantization=model.config.quantization or info.quantization,
        file_size=sum(layer.size for layer in model.manifest.layers),
        parameter_size=model.config.param_size or "",
        context_length=model.config.context_length,
        memory=estimate_bytes(shape_of(info, mapped), num_ctx, num_batch, DEFAULT_NUM_PARALLEL),
        num_ctx=num_ctx,
    )


def create_index(
    store: Store, models: Sequence[Reference], tags: Sequence[Reference]
) -> IndexResult:
    """Group the stored models ``models`` under ``tags`` as one index of variants."""
    with store.writing():
        descriptors = []
        for ref in models:
            desc = store.resolve(ref)
            if desc.media_type not in mt.MANIFEST_TYPES:
                raise BuildError(f"{ref}: is an index; name its variants one by one")
            descriptors.append(desc)
        return _store_index(store, [describe(store, d) for d in descriptors], tags, ())


def build_variants(
    store: Store,
    modelfile: Modelfile,
    context: Path,
    tags: Sequence[Reference],
    types: Sequence[str],
    options: BuildOptions | None = None,
    progress: Progress | None = None,
) -> IndexResult:
    """Build the Modelfile once per quantization in ``types`` and tag the index of them."""
    options = options or BuildOptions()
    if options.quantize:
        raise BuildError("--variants and --quantize exclude each other: list the types once")
    if not types:
        raise BuildError("--variants: name at least one type, e.g. q4_K_M,q8_0,f16")
    with store.writing():  # no sweep frees a variant before the index tags it
        builds = tuple(
            build_model(store, modelfile, context, [], replace(options, quantize=t), progress)
            for t in types
        )
        variants = [describe(store, b.descriptor) for b in builds]
        return _store_index(store, variants, tags, builds)


def _store_index(
    store: Store,
    variants: list[Variant],
    tags: Sequence[Reference],
    builds: tuple[BuildResult, ...],
) -> IndexResult:
    what = str(tags[0]) if tags else "index"
    index = variant_index(variants, what)
    desc = store.put_bytes(mt.OCI_INDEX, encode(index))
    for ref in tags:
        store.tag(desc, ref)
    by_digest = {v.descriptor.digest: v for v in variants}
    ordered = tuple(by_digest[e.digest] for e in index.manifests)
    return IndexResult(desc, index, ordered, tuple(tags), builds)


def index_json(result: IndexResult) -> dict[str, object]:
    """What ``mdl build --variants --json`` and ``mdl index create --json`` print."""
    return {
        **head_json(result.descriptor, result.tags),
        "variants": [v.to_json() for v in result.variants],
    }
