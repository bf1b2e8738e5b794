"""OCI image manifests and indexes (image-spec v1.1): parse, validate, serialise.

Serialisation is canonical for mdl: compact JSON with fields in the image spec's order, so the same
content always has the same digest. Parsing accepts any valid document and keeps its exact bytes
elsewhere (the store keys manifests by the digest of the bytes it was given, never re-encoded).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor, InvalidDescriptor
from mdl.spec.errors import MdlError

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class InvalidManifest(MdlError):
    exit_code = 2


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = mt.OCI_MANIFEST
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type}
        if self.artifact_type:
            obj["artifactType"] = self.artifact_type
        obj["config"] = self.config.to_json()
        obj["layers"] = [layer.to_json() for layer in self.layers]
        if self.subject:
            obj["subject"] = self.subject.to_json()
        if self.annotations:
            obj["annotations"] = dict(self.annotations)
        return obj

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)


@dataclass(frozen=True)
class Index:
    manifests: tuple[Descriptor, ...]
    media_type: str = mt.OCI_INDEX
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type}
        if self.artifact_type:
            obj["artifactType"] = self.artifact_type
        obj["manifests"] = [m.to_json() for m in self.manifests]
        if self.subject:
            obj["subject"] = self.subject.to_json()
        if self.annotations:
            obj["annotations"] = dict(self.annotations)
        return obj


def canonical_json(obj: Any) -> bytes:
    """Compact, key-order-preserving, UTF-8: the bytes mdl hashes for documents it writes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def encode(doc: Manifest | Index) -> bytes:
    return canonical_json(doc.to_json())


def parse(data: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse and validate a manifest or index; ``media_type`` is the Content-Type it came with."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise InvalidManifest(f"manifest is {len(data)} bytes, over the 4 MiB limit")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidManifest(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidManifest("manifest is not a JSON object")
    if obj.get("schemaVersion") != 2:
        raise InvalidManifest("manifest schemaVersion must be 2")
    declared = obj.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidManifest("manifest mediaType must be a string")
    if declared and media_type and declared != media_type:
        raise InvalidManifest(f"manifest mediaType {declared!r} does not match {media_type!r}")
    kind = declared or media_type or (mt.OCI_INDEX if "manifests" in obj else mt.OCI_MANIFEST)
    try:
        if kind in mt.MANIFEST_TYPES:
            return _parse_manifest(obj, kind)
        if kind in mt.INDEX_TYPES:
            return _parse_index(obj, kind)
    except InvalidDescriptor as exc:
        raise InvalidManifest(str(exc)) from exc
    raise InvalidManifest(f"unsupported manifest media type {kind!r}")


def _parse_manifest(obj: dict[str, Any], kind: str) -> Manifest:
    if "manifests" in obj:
        raise InvalidManifest("an image manifest cannot hold 'manifests'")
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise InvalidManifest("manifest has no layers list")
    if not isinstance(obj.get("config"), dict):
        raise InvalidManifest("manifest has no config descriptor")
    config = Descriptor.from_json(obj["config"])
    artifact_type = _optional_str(obj, "artifactType")
    if config.media_type == mt.OCI_EMPTY and not artifact_type:
        raise InvalidManifest("a manifest with an empty config must set artifactType")
    return Manifest(
        config=config,
        layers=tuple(Descriptor.from_json(layer) for layer in layers),
        media_type=kind,
        artifact_type=artifact_type,
        subject=_optional_descriptor(obj),
        annotations=_annotations(obj),
    )


def _parse_index(obj: dict[str, Any], kind: str) -> Index:
    manifests = obj.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidManifest("index has no manifests list")
    if "layers" in obj or "config" in obj:
        raise InvalidManifest("an index cannot hold 'layers' or 'config'")
    return Index(
        manifests=tuple(Descriptor.from_json(m) for m in manifests),
        media_type=kind,
        artifact_type=_optional_str(obj, "artifactType"),
        subject=_optional_descriptor(obj),
        annotations=_annotations(obj),
    )


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidManifest(f"manifest {key} must be a string")
    return value


def _optional_descriptor(obj: dict[str, Any]) -> Descriptor | None:
    return Descriptor.from_json(obj["subject"]) if obj.get("subject") is not None else None


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise InvalidManifest("manifest annotations must map strings to strings")
    return annotations
