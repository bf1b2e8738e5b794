"""Ollama's and Docker Model Runner's model formats, translated to and from mdl's. Pure.

Only manifests and configs are translated: every layer keeps its bytes and its digest, so one
set of blobs serves all three formats. mdl's file paths map to the others' media types:

=================  ===================================  ==========================================
mdl filepath       Ollama layer                         Docker Model Runner layer (config v0.2)
=================  ===================================  ==========================================
model.gguf         application/vnd.ollama.image.model   application/vnd.docker.ai.gguf.v3
adapters/*.gguf    …ollama.image.adapter                …docker.ai.model.file
projector.gguf     …ollama.image.projector              …docker.ai.mmproj
template           …ollama.image.template               …docker.ai.chat.template.jinja (Jinja) or
                                                        …docker.ai.model.file (Go)
system.txt         …ollama.image.system                 …docker.ai.model.file
params.json        …ollama.image.params                 …docker.ai.model.file
messages.json      …ollama.image.messages               …docker.ai.model.file
LICENSE*           …ollama.image.license                …docker.ai.license
draft.gguf,        (none: Ollama has no such layer)     …docker.ai.model.file
Modelfile
=================  ===================================  ==========================================

Docker layers keep the ``org.cncf.model.filepath`` annotation, so nothing is lost on a round trip
through Docker's format; Ollama's carries every part Ollama itself knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.manifest import Manifest, canonical_json
from mdl.spec.modelpack import (
    ANNOTATION_TEMPLATE_FORMAT,
    ModelConfig,
    adapter_filepath,
    is_license_filepath,
    license_filepath,
)
from mdl.spec.modelpack import template_format as mdl_template_format

OLLAMA = "application/vnd.ollama.image."
OLLAMA_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_CONFIG_V01 = "application/vnd.docker.ai.model.config.v0.1+json"
DOCKER_CONFIG_V02 = "application/vnd.docker.ai.model.config.v0.2+json"
DOCKER_GGUF = "application/vnd.docker.ai.gguf.v3"
DOCKER_LICENSE = "application/vnd.docker.ai.license"
DOCKER_TEMPLATE = "application/vnd.docker.ai.chat.template.jinja"
DOCKER_MMPROJ = "application/vnd.docker.ai.mmproj"
DOCKER_FILE = "application/vnd.docker.ai.model.file"

FORMATS = ("mdl", "ollama", "docker")

_OLLAMA_FILES = {
    "model": mt.WEIGHTS_FILE,
    "projector": mt.PROJECTOR_FILE,
    "template": mt.TEMPLATE_FILE,
    "system": mt.SYSTEM_FILE,
    "params": mt.PARAMS_FILE,
    "messages": mt.MESSAGES_FILE,
}
_OLLAMA_PARTS = {file: part for part, file in _OLLAMA_FILES.items()}
_DOCKER_FILES = {DOCKER_GGUF: mt.WEIGHTS_FILE, DOCKER_MMPROJ: mt.PROJECTOR_FILE}


def format_of(manifest: Manifest) -> str:
    """``mdl``, ``ollama``, ``docker``, or ``other`` for an artifact that is no model."""
    config = manifest.config.media_type
    if config == mt.MODEL_CONFIG:
        return "mdl"
    if any(layer.media_type.startswith(OLLAMA) for layer in manifest.layers):
        return "ollama"
    if config in (DOCKER_CONFIG_V01, DOCKER_CONFIG_V02):
        return "docker"
    return "other"


def model_layers(manifest: Manifest, template_text: str | None = None) -> list[Descriptor]:
    """A foreign manifest's layers as mdl layers: same blobs, annotated with file paths, in
    mdl's layer order; layers of unknown types are left out. ``template_text`` (the template
    layer's content) tells a Jinja template from a Go one where the layer does not say."""
    kind = format_of(manifest)
    named: list[Descriptor] = []
    licenses = 0
    template_format = mdl_template_format(template_text or "")
    for layer in manifest.layers:
        path = layer.annotations.get(mt.ANNOTATION_FILEPATH)
        if kind == "ollama":
            part = layer.media_type.removeprefix(OLLAMA).split(";")[0]
            if part == "adapter":
                path = adapter_filepath(layer.digest)
            elif part == "license":
                path, licenses = license_filepath(licenses), licenses + 1
            else:
                path = _OLLAMA_FILES.get(part)
        elif kind == "docker":
            if layer.media_type == DOCKER_LICENSE and not path:
                path, licenses = license_filepath(licenses), licenses + 1
            elif layer.media_type == DOCKER_TEMPLATE:
                path = path or mt.TEMPLATE_FILE
            else:
                path = path or _DOCKER_FILES.get(layer.media_type)
        if path is None:
            continue
        annotations = {mt.ANNOTATION_FILEPATH: path}
        if path == mt.TEMPLATE_FILE:
            kept = layer.annotations.get(ANNOTATION_TEMPLATE_FORMAT)
            annotations[ANNOTATION_TEMPLATE_FORMAT] = kept or template_format
        named.append(Descriptor(_mdl_media_type(path), layer.digest, layer.size, annotations))
    return sorted(named, key=lambda d: _rank(d.annotations[mt.ANNOTATION_FILEPATH]))


def to_ollama(model: Manifest, config: ModelConfig) -> tuple[bytes, Manifest]:
    """Ollama's manifest (Docker v2) and config for an mdl model; draft and Modelfile stay out."""
    layers = []
    for layer in model.layers:
        path = layer.annotations.get(mt.ANNOTATION_FILEPATH, "")
        part = _ollama_part(path)
        if part:
            layers.append(Descriptor(OLLAMA + part, layer.digest, layer.size))
    doc: dict[str, Any] = {
        "model_format": "gguf",
        "model_family": config.architecture or "",
        "model_families": [config.architecture] if config.architecture else [],
        "model_type": config.param_size or "",
        "file_type": config.quantization or "",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [str(layer.digest) for layer in layers]},
    }
    data = canonical_json(doc)
    config_desc = Descriptor.for_bytes(OLLAMA_CONFIG, data)
    return data, Manifest(config_desc, tuple(layers), media_type=mt.DOCKER_MANIFEST)


def to_docker(model: Manifest, config: ModelConfig) -> tuple[bytes, Manifest]:
    """Docker Model Runner's manifest (config v0.2, a layer per file, file paths kept)."""
    layers = []
    for layer in model.layers:
        path = layer.annotations.get(mt.ANNOTATION_FILEPATH, "")
        media_type = _docker_media_type(path, layer.annotations.get(ANNOTATION_TEMPLATE_FORMAT))
        layers.append(Descriptor(media_type, layer.digest, layer.size, dict(layer.annotations)))
    body: dict[str, Any] = {"format": "gguf"}
    for key, value in (
        ("architecture", config.architecture),
        ("parameters", config.param_size),
        ("quantization", config.quantization),
        ("context_size", config.context_length),
    ):
        if value is not None:
            body[key] = value
    doc = {
        "config": body,
        "descriptor": {"created": config.created_at} if config.created_at else {},
        "rootfs": {"type": "rootfs", "diff_ids": [str(layer.digest) for layer in layers]},
    }
    data = canonical_json(doc)
    config_desc = Descriptor.for_bytes(DOCKER_CONFIG_V02, data)
    return data, Manifest(config_desc, tuple(layers))


_ORDER: Sequence[str] = (
    mt.WEIGHTS_FILE,
    mt.ADAPTER_DIR,
    mt.PROJECTOR_FILE,
    mt.DRAFT_FILE,
    mt.TEMPLATE_FILE,
    mt.SYSTEM_FILE,
    mt.PARAMS_FILE,
    mt.MESSAGES_FILE,
    mt.LICENSE_FILE,
    mt.MODELFILE_FILE,
)


def _rank(path: str) -> int:
    for rank, prefix in enumerate(_ORDER):
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return rank
        if prefix == mt.LICENSE_FILE and is_license_filepath(path):
            return rank
    return len(_ORDER)


def _mdl_media_type(path: str) -> str:
    if path.endswith(".gguf"):
        return mt.MODEL_WEIGHT
    if path.startswith(mt.LICENSE_FILE) or path == mt.MODELFILE_FILE:
        return mt.MODEL_DOC
    return mt.MODEL_WEIGHT_CONFIG


def _ollama_part(path: str) -> str | None:
    if path.startswith(mt.ADAPTER_DIR):
        return "adapter"
    if is_license_filepath(path):
        return "license"
    return _OLLAMA_PARTS.get(path)


def _docker_media_type(path: str, template_format: str | None) -> str:
    if path == mt.WEIGHTS_FILE:
        return DOCKER_GGUF
    if path == mt.PROJECTOR_FILE:
        return DOCKER_MMPROJ
    if is_license_filepath(path):
        return DOCKER_LICENSE
    if path == mt.TEMPLATE_FILE and template_format == "jinja":
        return DOCKER_TEMPLATE
    return DOCKER_FILE
