"""What the registry browser says about a manifest: its summary (a catalog row) and its card. Pure.

The facts come from what the artifact holds: the config blob (mdl's ModelPack config, Ollama's
or Docker Model Runner's), the layers (named by their file paths, ``mdl.spec.foreign``) and the
small text layers (license, system prompt, template, parameters, messages) a caller reads for us.
Nothing here is HTML: the page inserts every value as text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mdl.spec import mediatypes as mt
from mdl.spec import variants as variant_keys
from mdl.spec.descriptor import Descriptor
from mdl.spec.foreign import format_of, model_layers
from mdl.spec.manifest import Index, Manifest
from mdl.spec.modelpack import ANNOTATION_TEMPLATE_FORMAT, ModelConfig, is_license_filepath

TEXT_FILES = (mt.TEMPLATE_FILE, mt.SYSTEM_FILE, mt.PARAMS_FILE, mt.MESSAGES_FILE)
MAX_TEXT_BYTES = 256 * 1024
"""Text layers larger than this are listed but not shown (a card is no file viewer)."""


@dataclass(frozen=True)
class Summary:
    """One manifest as a catalog row shows it; an index's sums up its variants."""

    kind: str
    """``mdl``, ``ollama``, ``docker``, ``other`` (no model), or ``index``."""
    size: int
    """Config plus layers: what a pull downloads (for an index: its largest variant)."""
    architecture: str | None = None
    param_size: str | None = None
    quantization: str | None = None
    context_length: int | None = None
    variants: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "size": self.size,
            "architecture": self.architecture,
            "paramSize": self.param_size,
            "quantization": self.quantization,
            "contextLength": self.context_length,
            "variants": self.variants,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Summary:
        return cls(
            obj["kind"],
            obj["size"],
            obj.get("architecture"),
            obj.get("paramSize"),
            obj.get("quantization"),
            obj.get("contextLength"),
            obj.get("variants", 0),
        )


def config_facts(manifest: Manifest, config: bytes | None) -> ModelConfig:
    """The model facts a config blob states, in whichever of the three formats it is."""
    try:
        obj = json.loads(config) if config else {}
    except ValueError:
        obj = {}
    if not isinstance(obj, dict):
        return ModelConfig()
    kind = format_of(manifest)
    if kind == "ollama":
        return ModelConfig(
            architecture=_text(obj.get("model_family")),
            param_size=_text(obj.get("model_type")),
            quantization=_text(obj.get("file_type")),
        )
    if kind == "docker":
        body = obj.get("config") if isinstance(obj.get("config"), dict) else {}
        assert isinstance(body, dict)
        return ModelConfig(
            architecture=_text(body.get("architecture")),
            param_size=_text(body.get("parameters")),
            quantization=_text(body.get("quantization")),
            context_length=_number(body.get("context_size")),
        )
    if kind == "mdl":
        parsed = ModelConfig.from_json(obj)
        return ModelConfig(
            architecture=_text(parsed.architecture),
            param_size=_text(parsed.param_size),
            quantization=_text(parsed.quantization),
            context_length=_number(parsed.context_length),
            name=_text(parsed.name),
            version=_text(parsed.version),
            licenses=tuple(x for x in parsed.licenses if isinstance(x, str)),
            created_at=_text(parsed.created_at),
        )
    return ModelConfig()


def summary(manifest: Manifest, config: bytes | None) -> Summary:
    facts = config_facts(manifest, config)
    return Summary(
        format_of(manifest),
        manifest.config.size + sum(layer.size for layer in manifest.layers),
        facts.architecture,
        facts.param_size,
        facts.quantization,
        facts.context_length,
    )


def variant_summary(entry: Descriptor, child: Summary | None) -> Summary:
    """One variant of an index: its manifest's summary, with what the entry's annotations say
    (``mdl.spec.variants``; they win over the config)."""
    notes = entry.annotations
    base = child or Summary("other", entry.size)
    context = notes.get(variant_keys.CONTEXT_LENGTH, "")
    return Summary(
        base.kind,
        base.size,
        base.architecture,
        notes.get(variant_keys.PARAMETER_SIZE) or base.param_size,
        notes.get(variant_keys.QUANTIZATION) or base.quantization,
        int(context) if context.isdigit() else base.context_length,
    )


def index_summary(children: list[Summary]) -> Summary:
    """An index's row: its variants' facts joined (``Q4_K_M, Q8_0``), its largest size."""
    return Summary(
        "index",
        max((child.size for child in children), default=0),
        _joined(child.architecture for child in children),
        _joined(child.param_size for child in children),
        _joined(child.quantization for child in children),
        max((c.context_length for c in children if c.context_length), default=None),
        variants=len(children),
    )


def variants(index: Index) -> list[dict[str, Any]]:
    """Each entry of an index as the repository page lists it: digest, size, media type,
    platform and every annotation it carries."""
    return [
        {
            "digest": str(entry.digest),
            "mediaType": entry.media_type,
            "size": entry.size,
            "platform": entry.extra.get("platform"),
            "artifactType": entry.extra.get("artifactType"),
            "annotations": dict(entry.annotations),
        }
        for entry in index.manifests
    ]


def named_layers(manifest: Manifest) -> list[tuple[str | None, Descriptor]]:
    """Every layer with the file path it stands for in an mdl model (None when no model file)."""
    paths = {layer.digest: _path(layer) for layer in model_layers(manifest)}
    return [(paths.get(layer.digest), layer) for layer in manifest.layers]


def template_kind(manifest: Manifest, text: str | None) -> str | None:
    """``jinja`` or ``go``: as the template layer says, else as its text reads."""
    for layer in model_layers(manifest, text):
        if _path(layer) == mt.TEMPLATE_FILE:
            return layer.annotations.get(ANNOTATION_TEMPLATE_FORMAT)
    return None


def text_layers(manifest: Manifest) -> list[tuple[str, Descriptor]]:
    """The layers a card shows the text of (small enough), by file path."""
    return [
        (path, layer)
        for path, layer in named_layers(manifest)
        if path is not None
        and (path in TEXT_FILES or is_license_filepath(path))
        and layer.size <= MAX_TEXT_BYTES
    ]


def card(
    manifest: Manifest,
    config: bytes | None,
    texts: Mapping[str, str],
    referrers: list[dict[str, Any]],
) -> dict[str, Any]:
    """The model card: facts, texts (by file path, as ``texts`` holds them), layers, referrers."""
    facts = config_facts(manifest, config)
    named = named_layers(manifest)
    licenses = [text for path, text in texts.items() if is_license_filepath(path)]
    return {
        "format": format_of(manifest),
        "mediaType": manifest.media_type,
        "artifactType": manifest.artifact_type,
        "facts": {k: v for k, v in asdict(facts).items() if k != "diff_ids"},
        "size": manifest.config.size + sum(layer.size for layer in manifest.layers),
        "config": manifest.config.to_json(),
        "layers": [
            {
                "mediaType": layer.media_type,
                "file": path,
                "size": layer.size,
                "digest": str(layer.digest),
                "annotations": dict(layer.annotations),
            }
            for path, layer in named
        ],
        "adapters": [
            {"file": p, "size": d.size, "digest": str(d.digest)}
            for p, d in named
            if p is not None and p.startswith(mt.ADAPTER_DIR)
        ],
        "license": licenses,
        "system": texts.get(mt.SYSTEM_FILE),
        "template": texts.get(mt.TEMPLATE_FILE),
        "templateKind": template_kind(manifest, texts.get(mt.TEMPLATE_FILE)),
        "parameters": _json_text(texts.get(mt.PARAMS_FILE)),
        "messages": _json_text(texts.get(mt.MESSAGES_FILE)),
        "annotations": dict(manifest.annotations),
        "referrers": [_referrer(entry) for entry in referrers],
    }


REFERRER_KINDS = {
    "application/vnd.dev.sigstore.bundle.v0.3+json": "signature",
    "application/vnd.cyclonedx+json": "sbom",
    "application/spdx+json": "sbom",
    "application/vnd.in-toto+json": "provenance",
}


def _referrer(entry: Mapping[str, Any]) -> dict[str, Any]:
    artifact_type = entry.get("artifactType") or ""
    annotations = entry.get("annotations") or {}
    return {
        "kind": REFERRER_KINDS.get(artifact_type, "other"),
        "artifactType": artifact_type,
        "digest": entry.get("digest"),
        "size": entry.get("size"),
        "annotations": annotations if isinstance(annotations, dict) else {},
    }


def _json_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _path(descriptor: Descriptor) -> str:
    return descriptor.annotations.get(mt.ANNOTATION_FILEPATH, "")


def _joined(values: Any) -> str | None:
    seen: list[str] = []
    for value in values:
        for part in (value or "").split(", "):
            if part and part not in seen:
                seen.append(part)
    return ", ".join(seen) or None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
