"""Bring a pulled Ollama or Docker Model Runner model into mdl's format, and write mdl models in
theirs for a push. Layer bytes never change; only a manifest and a config are written."""

from __future__ import annotations

from mdl.client.body import MANIFEST_BYTES
from mdl.spec import foreign
from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.errors import MdlError
from mdl.spec.gguf import read_gguf_file
from mdl.spec.manifest import Manifest
from mdl.spec.modelpack import config_from_gguf, model_manifest
from mdl.store.models import load_manifest
from mdl.store.store import Store


def adopt(store: Store, root: Descriptor) -> Descriptor:
    """The mdl manifest for a pulled root: itself when it is mdl's (or no model at all), else a
    translation of Ollama's or Docker's manifest over the same blobs, stored beside it."""
    doc = store.read_manifest(root)
    if not isinstance(doc, Manifest) or foreign.format_of(doc) in ("mdl", "other"):
        return root
    layers = foreign.model_layers(doc, _template_text(store, doc))
    weights = next(
        (d for d in layers if d.annotations[mt.ANNOTATION_FILEPATH] == mt.WEIGHTS_FILE), None
    )
    if weights is None:
        raise MdlError(f"{root.digest}: {foreign.format_of(doc)} model has no GGUF weights")
    config = config_from_gguf(read_gguf_file(store.blob_path(weights.digest)), layers)
    config_desc = store.put_bytes(mt.MODEL_CONFIG, manifests.canonical_json(config.to_json()))
    translated = model_manifest(config_desc, layers, {})
    return store.put_bytes(mt.OCI_MANIFEST, manifests.encode(translated))


def _template_text(store: Store, doc: Manifest) -> str | None:
    for layer in doc.layers:
        if layer.media_type in (foreign.OLLAMA + "template", foreign.DOCKER_TEMPLATE):
            if layer.size > MANIFEST_BYTES:  # it is read into memory
                raise MdlError(
                    f"{layer.digest}: a template of {layer.size} bytes is over the limit of "
                    f"{MANIFEST_BYTES}"
                )
            return store.read_blob(layer).decode(errors="replace")
    return None


def render(store: Store, root: Descriptor, fmt: str) -> Descriptor:
    """The manifest to push for ``fmt``: the model's own for ``mdl``, else a translation whose
    config and manifest are stored locally so the copy can send them."""
    if fmt == "mdl":
        return root
    model = load_manifest(store, root)
    writer = foreign.to_ollama if fmt == "ollama" else foreign.to_docker
    config_bytes, translated = writer(model.manifest, model.config)
    store.put_bytes(translated.config.media_type, config_bytes)
    return store.put_bytes(translated.media_type, manifests.encode(translated))
