"""mdl's model artifact: a CNCF ModelPack manifest whose layers are the files of a model.

Pure: it assembles and reads documents; the builder and the store move the bytes.
See docs/format.md for the format with an example.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.gguf import GGUFInfo
from mdl.spec.manifest import Manifest
from mdl.spec.whisper_ggml import FORMAT as GGML_FORMAT
from mdl.spec.whisper_ggml import is_whisper

ANNOTATION_TEMPLATE_FORMAT = "dev.mdl.template.format"

_JINJA = re.compile(r"\{%|\{\{-?\s*(messages|bos_token|eos_token|raise_exception)\b")


def template_format(text: str) -> str:
    """``jinja`` for a Jinja chat template (as GGUF files carry), ``go`` for Ollama's Go form."""
    return "jinja" if _JINJA.search(text) else "go"


def param_size(count: int) -> str:
    """ModelPack's ``paramSize``: a count with at most one decimal and a scale letter
    (``134.5M``, ``7B``, ``120.1K``)."""
    for scale, letter in ((10**15, "Q"), (10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if count >= scale:
            return f"{count / scale:.1f}".removesuffix(".0") + letter
    return str(count)


@dataclass(frozen=True)
class ModelConfig:
    """The ``application/vnd.cncf.model.config.v1+json`` document."""

    architecture: str | None = None
    param_size: str | None = None
    quantization: str | None = None
    precision: str | None = None
    context_length: int | None = None
    name: str | None = None
    version: str | None = None
    licenses: tuple[str, ...] = ()
    created_at: str | None = None
    diff_ids: tuple[str, ...] = ()
    format: str = "gguf"
    input_types: tuple[str, ...] = ()
    """ModelPack ``config.capabilities.input_types`` (``audio`` for speech-to-text)."""
    output_types: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        descriptor: dict[str, Any] = {}
        if self.created_at:
            descriptor["createdAt"] = self.created_at
        if self.name:
            descriptor["name"] = self.name
        if self.version:
            descriptor["version"] = self.version
        if self.licenses:
            descriptor["licenses"] = list(self.licenses)
        config: dict[str, Any] = {"format": self.format}
        for key, value in (
            ("architecture", self.architecture),
            ("paramSize", self.param_size),
            ("precision", self.precision),
            ("quantization", self.quantization),
            ("contextLength", self.context_length),
        ):
            if value is not None:
                config[key] = value
        if self.input_types or self.output_types:
            config["capabilities"] = {
                "input_types": list(self.input_types),
                "output_types": list(self.output_types),
            }
        return {
            "descriptor": descriptor,
            "config": config,
            "modelfs": {"type": "layers", "diffIds": list(self.diff_ids)},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ModelConfig:
        descriptor = obj.get("descriptor") or {}
        config = obj.get("config") or {}
        modelfs = obj.get("modelfs") or {}
        capabilities = config.get("capabilities") or {}
        return cls(
            architecture=config.get("architecture"),
            param_size=config.get("paramSize"),
            quantization=config.get("quantization"),
            precision=config.get("precision"),
            context_length=config.get("contextLength"),
            name=descriptor.get("name"),
            version=descriptor.get("version"),
            licenses=tuple(descriptor.get("licenses") or ()),
            created_at=descriptor.get("createdAt"),
            diff_ids=tuple(modelfs.get("diffIds") or modelfs.get("diff_ids") or ()),
            format=config.get("format") or "gguf",
            input_types=tuple(capabilities.get("input_types") or ()),
            output_types=tuple(capabilities.get("output_types") or ()),
        )


@dataclass(frozen=True)
class ModelFiles:
    """A model's layers keyed by their ``org.cncf.model.filepath``, in manifest order."""

    files: Mapping[str, Descriptor] = field(default_factory=dict)

    @classmethod
    def of(cls, manifest: Manifest) -> ModelFiles:
        return cls(
            {
                layer.annotations[mt.ANNOTATION_FILEPATH]: layer
                for layer in manifest.layers
                if mt.ANNOTATION_FILEPATH in layer.annotations
            }
        )

    def get(self, filepath: str) -> Descriptor | None:
        return self.files.get(filepath)

    @property
    def weights(self) -> Descriptor | None:
        """The GGUF weights, or a whisper.cpp model's ggml file."""
        return self.files.get(mt.WEIGHTS_FILE) or self.files.get(mt.WHISPER_WEIGHTS_FILE)

    @property
    def adapters(self) -> list[tuple[str, Descriptor]]:
        return [(p, d) for p, d in self.files.items() if p.startswith(mt.ADAPTER_DIR)]

    @property
    def licenses(self) -> list[Descriptor]:
        return [d for p, d in self.files.items() if is_license_filepath(p)]


def license_filepath(index: int) -> str:
    """``LICENSE``, ``LICENSE.2``, ``LICENSE.3``, … for the 0-based ``index``."""
    return mt.LICENSE_FILE if index == 0 else f"{mt.LICENSE_FILE}.{index + 1}"


def is_license_filepath(path: str) -> bool:
    return path == mt.LICENSE_FILE or path.startswith(mt.LICENSE_FILE + ".")


def adapter_filepath(digest: Digest) -> str:
    """Where an adapter that has no file path of its own is stored: named by its digest."""
    return f"{mt.ADAPTER_DIR}{digest.short}.gguf"


_FLOAT_TYPES = {"F32": "fp32", "F16": "fp16", "BF16": "bf16", "F64": "fp64"}


def config_from_gguf(
    info: GGUFInfo,
    layers: Sequence[Descriptor],
    *,
    version: str | None = None,
    created: str | None = None,
) -> ModelConfig:
    """The config a model with these weights and layers has: what its GGUF header says."""
    speech = is_whisper(info)
    return ModelConfig(
        architecture=info.architecture,
        param_size=param_size(info.parameter_count),
        quantization=info.quantization,
        precision=_FLOAT_TYPES.get(info.quantization),
        context_length=info.context_length,
        name=info.name,
        version=version,
        licenses=(info.license,) if info.license else (),
        created_at=created,
        diff_ids=tuple(str(layer.digest) for layer in layers),
        format=GGML_FORMAT if speech else "gguf",
        input_types=("audio",) if speech else (),
        output_types=("text",) if speech else (),
    )


def weights_filepath(info: GGUFInfo) -> str:
    """Where a model's weights are stored inside its package."""
    return mt.WHISPER_WEIGHTS_FILE if is_whisper(info) else mt.WEIGHTS_FILE


def model_manifest(
    config: Descriptor, layers: Sequence[Descriptor], annotations: Mapping[str, str]
) -> Manifest:
    return Manifest(
        config=config,
        layers=tuple(layers),
        artifact_type=mt.MODEL_ARTIFACT,
        annotations=dict(annotations),
    )
