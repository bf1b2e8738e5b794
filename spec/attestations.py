"""What a build can attach to a model: an SLSA provenance v1 statement and a CycloneDX 1.6 ML-BOM.

Both are pure functions of what the build knew, with no clock and no randomness (the BOM's
serial number is a UUID derived from the model's manifest digest; times appear only when the
build was given ``SOURCE_DATE_EPOCH``), so the same inputs give the same bytes and the same
referrer digests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mdl.spec.digest import Digest
from mdl.spec.modelpack import ModelConfig
from mdl.spec.sigstore import STATEMENT_TYPE

SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:mdl:build:modelfile:v1"
BUILDER_ID = "urn:mdl:builder:mdl-build"
IN_TOTO_MEDIA_TYPE = "application/vnd.in-toto+json"
CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"
_SERIAL_NAMESPACE = uuid.UUID("6c1b0f52-3a4e-4c55-9a43-5d2f0c7e8b11")


@dataclass(frozen=True)
class BuildFacts:
    """What one ``mdl build`` knew: its inputs and what it produced."""

    name: str
    """The model's repository name (the first ``-t``), the statements' subject name."""
    version: str | None
    manifest: Digest
    config: ModelConfig
    files: Mapping[str, Digest]
    """Every file of the model (the names ``mdl export`` writes) and its digest."""
    modelfile_path: str
    modelfile_text: str
    sources: Mapping[str, Digest] = field(default_factory=dict)
    """Every source file the build read (as the Modelfile named it) and its digest."""
    base: Digest | None = None
    """The manifest of the stored model the Modelfile started ``FROM``, if any."""
    adapters: Sequence[str] = ()
    licenses: Sequence[str] = ()
    """The model's license texts (its LICENSE files); the config's SPDX ids when empty."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    source_date_epoch: int | None = None
    builder_version: str = "0"


def provenance(facts: BuildFacts) -> dict[str, Any]:
    """An in-toto Statement v1 with an SLSA provenance v1 predicate."""
    dependencies: list[dict[str, Any]] = [
        {"name": path, "digest": {digest.algorithm: digest.hex}}
        for path, digest in sorted(facts.sources.items())
    ]
    if facts.base is not None:
        dependencies.append({"name": "FROM", "digest": {facts.base.algorithm: facts.base.hex}})
    modelfile = facts.modelfile_text.encode()
    internal: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if facts.source_date_epoch is not None:
        internal["SOURCE_DATE_EPOCH"] = facts.source_date_epoch
        metadata["startedOn"] = metadata["finishedOn"] = _rfc3339(facts.source_date_epoch)
    run_details: dict[str, Any] = {
        "builder": {"id": BUILDER_ID, "version": {"mdl": facts.builder_version}}
    }
    if metadata:
        run_details["metadata"] = metadata
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": facts.name, "digest": {facts.manifest.algorithm: facts.manifest.hex}}],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "modelfile": {
                        "path": facts.modelfile_path,
                        "digest": {"sha256": Digest.of(modelfile).hex},
                        "text": facts.modelfile_text,
                    },
                    "tags": list(facts.tags),
                    "labels": dict(sorted(facts.labels.items())),
                    "parameters": dict(sorted(facts.parameters.items())),
                },
                "internalParameters": internal,
                "resolvedDependencies": dependencies,
            },
            "runDetails": run_details,
        },
    }


def ml_bom(facts: BuildFacts) -> dict[str, Any]:
    """A CycloneDX 1.6 BOM whose main component is the model, with its model card and files."""
    config = facts.config
    model_ref = f"model:{facts.manifest}"
    properties = [
        {"name": f"mdl:{key}", "value": str(value)}
        for key, value in (
            ("architecture", config.architecture),
            ("parameter_size", config.param_size),
            ("quantization", config.quantization),
            ("context_length", config.context_length),
            ("format", "gguf"),
        )
        if value is not None
    ]
    model: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": model_ref,
        "name": facts.name,
        "hashes": [{"alg": "SHA-256", "content": facts.manifest.hex}],
        "modelCard": {
            "modelParameters": {
                "task": "text-generation",
                "architectureFamily": config.architecture or "unknown",
                "modelArchitecture": config.architecture or "unknown",
            },
            "properties": properties,
        },
        "properties": properties,
    }
    if facts.version:
        model["version"] = facts.version
    if licenses := (facts.licenses or config.licenses):
        model["licenses"] = [{"license": {"name": _license_name(text)}} for text in licenses]
    if facts.base is not None:
        model["pedigree"] = {
            "ancestors": [
                {
                    "type": "machine-learning-model",
                    "bom-ref": f"model:{facts.base}",
                    "name": f"base of {facts.name}",
                    "hashes": [{"alg": "SHA-256", "content": facts.base.hex}],
                }
            ]
        }
    files = [
        {
            "type": "machine-learning-model" if _is_weights(path, facts.adapters) else "file",
            "bom-ref": f"file:{path}",
            "name": path,
            "hashes": [{"alg": "SHA-256", "content": digest.hex}],
        }
        for path, digest in sorted(facts.files.items())
    ]
    metadata: dict[str, Any] = {
        "tools": {"components": [{"type": "application", "name": "mdl",
                                  "version": facts.builder_version}]},
        "component": model,
    }  # fmt: skip
    if facts.source_date_epoch is not None:
        metadata["timestamp"] = _rfc3339(facts.source_date_epoch)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(_SERIAL_NAMESPACE, str(facts.manifest))}",
        "version": 1,
        "metadata": metadata,
        "components": files,
        "dependencies": [{"ref": model_ref, "dependsOn": [f["bom-ref"] for f in files]}],
    }


def encode(document: Mapping[str, Any]) -> bytes:
    """The bytes a document is stored as: sorted keys, compact, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _is_weights(path: str, adapters: Sequence[str]) -> bool:
    return path.endswith(".gguf") or path in adapters


def _license_name(text: str) -> str:
    """A license's first non-empty line (its title, or an SPDX id), at most 200 characters."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "unnamed")
    return first[:200]


def _rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
