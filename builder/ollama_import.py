"""``mdl import ollama``: every model of a local Ollama store becomes an mdl model over the same
blobs.

Ollama's layout (``$OLLAMA_MODELS``, default ``~/.ollama/models``)::

    manifests/<registry>/<namespace>/<model>/<tag>   Docker v2 schema 2 manifest (JSON)
    blobs/sha256-<hex>                               every layer and config, by digest

Each layer's media type ``application/vnd.ollama.image.<part>`` says what it holds (model,
adapter, projector, template, system, params, messages, license; ``prompt`` is the old name of
template). The model keeps its name (``registry.ollama.ai/library/llama3:8b``; host, namespace
and model lower-cased, as Ollama compares them) and every blob keeps its digest: a hard link where
the file systems allow, else a copy, verified either way (see store/adopt.py). mdl adds three small
blobs: its config, the Modelfile ``ollama show --modelfile`` prints (FROM and ADAPTER naming blob
digests instead of Ollama's blob paths), and, when Ollama's manifest has no template, Ollama's
default ``{{ .Prompt }}``, so the model is prompted as Ollama prompts it. Importing again gives
the same manifest digest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mdl.builder.recipe import param_text
from mdl.spec import foreign
from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import GGUFError, InvalidReference, MdlError, ModelfileError
from mdl.spec.gguf import read_gguf_file
from mdl.spec.manifest import Manifest, canonical_json, encode
from mdl.spec.modelfile import Instruction, Modelfile, format_modelfile
from mdl.spec.modelpack import ModelFiles, config_from_gguf, model_manifest
from mdl.spec.parameters import parse_params_json
from mdl.spec.reference import Reference
from mdl.store.adopt import Adoption
from mdl.store.store import Store

DEFAULT_TEMPLATE = "{{ .Prompt }}"
"""What Ollama prompts with when a model has no template layer."""
_MODEL = foreign.OLLAMA + "model"
_TEMPLATE = foreign.OLLAMA + "template"
_PARTS = ("model", "adapter", "projector", "template", "system", "params", "messages", "license")


class ImportFailed(MdlError):
    """One Ollama model that cannot be imported; the others still are."""


@dataclass(frozen=True)
class Found:
    """A manifest in an Ollama store and the mdl name it gets."""

    name: str
    path: Path


@dataclass
class Imported:
    name: str
    digest: Digest | None = None
    status: str = "imported"
    """``imported``, ``unchanged`` (already there, same digest), ``would import``, ``failed``."""
    linked: int = 0
    copied: int = 0
    present: int = 0
    added: int = 0
    """Blobs mdl wrote itself (config, Modelfile, default template)."""
    skipped: list[str] = field(default_factory=list)
    """Layer media types Ollama itself ignores or mdl cannot hold, left out."""
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": str(self.digest) if self.digest else None,
            "status": self.status,
            "blobs": {"linked": self.linked, "copied": self.copied, "present": self.present},
            "added": self.added,
            "skipped": self.skipped,
            "warnings": self.warnings,
            "error": self.error,
        }


def default_dir() -> Path:
    """``$OLLAMA_MODELS``, else ``~/.ollama/models``."""
    return Path(os.environ.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models")


def find_models(directory: Path) -> list[Found]:
    """Every ``manifests/<registry>/<namespace>/<model>/<tag>`` file, sorted by name."""
    root = directory / "manifests"
    if not root.is_dir():
        raise ImportFailed(f"{directory}: not an Ollama models directory (no manifests/)")
    found = []
    for path in sorted(root.glob("*/*/*/*")):
        if path.is_file():
            host, namespace, model, tag = path.relative_to(root).parts
            found.append(Found(f"{host}/{namespace}/{model}".lower() + f":{tag}", path))
    return found


def import_store(store: Store, directory: Path, *, dry_run: bool = False) -> Iterator[Imported]:
    """Import every model, one at a time; a model that fails is reported and the rest go on."""
    for found in find_models(directory):
        result = Imported(found.name)
        try:
            import_model(store, directory, found, result, dry_run=dry_run)
        except MdlError as exc:
            result.status, result.error = "failed", str(exc)
        yield result


def import_model(
    store: Store, directory: Path, found: Found, result: Imported, *, dry_run: bool = False
) -> None:
    try:
        ref = Reference.parse(found.name)
    except InvalidReference as exc:
        raise ImportFailed(f"{found.path}: {exc}") from exc
    manifest = _read_manifest(found.path)
    layers = _known_layers(manifest, result)
    if dry_run:
        result.status = "would import"
        return
    with store.writing(), Adoption(store.root) as adoption:
        for layer in layers:
            adoption.add(_blob(directory, layer.digest), layer)
        config_doc = _ollama_config(directory, manifest)
        model = next(la for la in layers if la.media_type == _MODEL)
        weights = _blob(directory, model.digest)  # verified by now
        try:
            info = read_gguf_file(weights)
        except GGUFError as exc:
            raise ImportFailed(str(exc)) from exc  # names the file
        adoption.publish()
        result.linked, result.copied, result.present = (
            adoption.linked,
            adoption.copied,
            adoption.present,
        )
        template = next((la for la in layers if la.media_type == _TEMPLATE), None)
        if template is None:
            default = _add(store, result, mt.MODEL_WEIGHT_CONFIG, DEFAULT_TEMPLATE)
            layers.append(Descriptor(_TEMPLATE, default.digest, default.size))
        text = store.read_blob(template).decode(errors="replace") if template else DEFAULT_TEMPLATE
        mdl_layers = foreign.model_layers(replace(manifest, layers=tuple(layers)), text)
        modelfile = _modelfile(store, ModelFiles({_path(d): d for d in mdl_layers}), config_doc)
        if isinstance(modelfile, ModelfileError):
            result.warnings.append(f"no Modelfile layer: {modelfile.message}")
        else:
            annotations = {mt.ANNOTATION_FILEPATH: mt.MODELFILE_FILE}
            mdl_layers.append(_add(store, result, mt.MODEL_DOC, modelfile, annotations))
        config = config_from_gguf(info, mdl_layers)
        config_desc = store.put_bytes(mt.MODEL_CONFIG, canonical_json(config.to_json()))
        desc = store.put_bytes(mt.OCI_MANIFEST, encode(model_manifest(config_desc, mdl_layers, {})))
        try:
            before = store.resolve(ref).digest
        except MdlError:
            before = None
        store.tag(desc, ref)
    result.digest = desc.digest
    result.status = "unchanged" if before == desc.digest else "imported"


def _read_manifest(path: Path) -> Manifest:
    try:
        doc = manifests.parse(path.read_bytes())
    except MdlError as exc:
        raise ImportFailed(f"{path}: {exc}") from exc
    except OSError as exc:
        raise ImportFailed(f"{path}: {exc.strerror}") from exc
    if not isinstance(doc, Manifest):
        raise ImportFailed(f"{path}: an index, not a model manifest")
    return doc


def _known_layers(manifest: Manifest, result: Imported) -> list[Descriptor]:
    """The layers mdl keeps (``prompt`` read as ``template``); one model layer, at most one
    projector."""
    kept = []
    for layer in manifest.layers:
        part = layer.media_type.removeprefix(foreign.OLLAMA)
        if part == "prompt":
            layer = Descriptor(_TEMPLATE, layer.digest, layer.size)
        elif part not in _PARTS or not layer.media_type.startswith(foreign.OLLAMA):
            result.skipped.append(layer.media_type)
            continue
        kept.append(layer)
    for part in ("model", "projector", "template", "system", "params", "messages"):
        count = sum(1 for la in kept if la.media_type == foreign.OLLAMA + part)
        if count > 1 or (part == "model" and count == 0):
            wanted = "one" if part == "model" else "at most one"
            raise ImportFailed(f"{count} {part} layers: mdl takes {wanted}")
    return kept


def _ollama_config(directory: Path, manifest: Manifest) -> dict[str, Any]:
    """Ollama's config (renderer, parser, …), verified; {} when the manifest has none."""
    config = manifest.config
    if not config.size:
        return {}
    source = _blob(directory, config.digest)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ImportFailed(f"{source}: config blob: {exc.strerror}") from exc
    if Digest.of(data) != config.digest:
        raise ImportFailed(f"{source}: {config.digest}: config: content is {Digest.of(data)}")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ImportFailed(f"{source}: config is not JSON: {exc}") from exc
    return doc if isinstance(doc, dict) else {}


def _modelfile(store: Store, files: ModelFiles, config: dict[str, Any]) -> str | ModelfileError:
    """The Modelfile in ``ollama show --modelfile``'s order: FROM, ADAPTER, TEMPLATE, SYSTEM,
    RENDERER, PARSER, PARAMETER, LICENSE, MESSAGE (Ollama's projector line has no mdl form)."""

    def text(filepath: str) -> str | None:
        desc = files.get(filepath)
        return store.read_blob(desc).decode() if desc else None

    weights = files.get(mt.WEIGHTS_FILE)
    assert weights is not None
    lines = [Instruction("from", str(weights.digest))]
    lines += [Instruction("adapter", str(d.digest)) for _, d in files.adapters]
    try:
        template = text(mt.TEMPLATE_FILE)
        if template is not None:
            lines.append(Instruction("template", template))
        system = text(mt.SYSTEM_FILE)
        if system:
            lines.append(Instruction("system", system))
        for command in ("renderer", "parser"):
            value = config.get(command)
            if isinstance(value, str) and value:
                lines.append(Instruction(command, value))
        params = text(mt.PARAMS_FILE)
        for name, value in (parse_params_json(params.encode()) if params else {}).items():
            for item in value if isinstance(value, list) else [value]:
                assert isinstance(item, bool | int | float | str)
                lines.append(Instruction("parameter", param_text(item), key=name))
        lines += [Instruction("license", store.read_blob(d).decode()) for d in files.licenses]
        for message in json.loads(text(mt.MESSAGES_FILE) or "[]"):
            lines.append(Instruction("message", message.get("content", ""), key=message["role"]))
        return format_modelfile(Modelfile(tuple(lines), "ollama"))
    except ModelfileError as exc:
        return exc
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
        return ModelfileError("ollama", 0, f"unreadable text, params or messages: {exc}")


def _add(
    store: Store,
    result: Imported,
    media_type: str,
    text: str,
    annotations: dict[str, str] | None = None,
) -> Descriptor:
    """A small blob mdl writes itself (counted in ``added`` when new)."""
    data = text.encode()
    if not store.exists(Descriptor.for_bytes(media_type, data)):
        result.added += 1
    return store.put_bytes(media_type, data, annotations)


def _path(desc: Descriptor) -> str:
    return desc.annotations[mt.ANNOTATION_FILEPATH]


def _blob(directory: Path, digest: Digest) -> Path:
    return directory / "blobs" / f"{digest.algorithm}-{digest.hex}"
