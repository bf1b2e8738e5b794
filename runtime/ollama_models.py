"""Models described in Ollama's JSON: ``/api/tags`` entries, ``/api/show``, ``/api/ps``. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mdl.runtime.library import Listed
from mdl.runtime.models import ResolvedModel
from mdl.runtime.scheduler import Slot
from mdl.runtime.templates import chat_template
from mdl.runtime.templates.gotemplate import go_print
from mdl.spec import mediatypes as mt
from mdl.spec.gguf import ArraySummary, MetadataValue
from mdl.spec.modelfile import ModelParts, format_modelfile
from mdl.spec.modelpack import ModelConfig

FOREVER = "2318-11-26T00:00:00Z"
"""Ollama's ``expires_at`` for a model kept loaded forever (the largest Go duration from now)."""


def timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def details(config: ModelConfig) -> dict[str, Any]:
    family = config.architecture or ""
    return {
        "parent_model": "",
        "format": config.format,
        "family": family,
        "families": [family] if family else None,
        "parameter_size": config.param_size or "",
        "quantization_level": config.quantization or "",
    }


def tag_entry(model: Listed) -> dict[str, Any]:
    return {
        "name": model.name,
        "model": model.name,
        "modified_at": timestamp(model.modified_at),
        "size": model.size,
        "digest": model.digest.hex,
        "details": details(model.config),
    }


def ps_entry(slot: Slot, model: ResolvedModel) -> dict[str, Any]:
    return {
        "name": slot.want.name,
        "model": slot.want.name,
        "size": slot.want.size,
        "digest": model.digest.hex,
        "details": details(model.stored.config),
        "expires_at": timestamp(slot.expires_at) if slot.expires_at else FOREVER,
        "size_vram": 0,
        "context_length": slot.want.spec.num_ctx,
        **({"variant": model.variant} if model.variant else {}),
    }


def show(model: ResolvedModel) -> dict[str, Any]:
    """Everything real clients read from ``/api/show``: ``modelfile``, ``parameters``,
    ``template``, ``details``, ``model_info``, ``capabilities`` (and more)."""
    store = model.stored.store
    licenses = [store.read_blob(d).decode(errors="replace") for d in model.stored.files.licenses]
    out: dict[str, Any] = {
        "modelfile": modelfile(model),
        "parameters": parameters_text(model.params),
        "template": model.template,
        "details": details(model.stored.config),
        "model_info": model_info(model),
        "capabilities": capabilities(model),
        "modified_at": timestamp(model.modified_at),
    }
    if model.variant:
        out["variant"] = model.variant
    if model.system:
        out["system"] = model.system
    if licenses:
        out["license"] = "\n\n".join(licenses)
    if model.messages:
        out["messages"] = [{"role": m.role, "content": m.content} for m in model.messages]
    return out


def capabilities(model: ResolvedModel) -> list[str]:
    if model.speech:
        return ["transcription"]
    if not model.pooling_mean:  # a GGUF with a pooling type is an embedding model
        return ["embedding"]
    found = ["completion"]
    try:
        template = chat_template(model.template, model.template_format)
    except Exception:  # a template that does not parse still leaves the model listed
        return found
    if template.supports_tools:
        found.append("tools")
    if template.supports_insert:
        found.append("insert")
    return found


def parameters_text(params: Mapping[str, Any]) -> str:
    """Ollama's ``parameters``: one ``name value`` line per value, values in Go's ``%#v``."""
    lines = []
    for name in sorted(params):
        for item in _items(params[name]):
            text = json.dumps(item) if isinstance(item, str) else go_print(item)
            lines.append(f"{name:<30} {text}")
    return "\n".join(lines)


def model_info(model: ResolvedModel) -> dict[str, Any]:
    """The GGUF header's metadata; long arrays (the vocabulary) are null, as Ollama shows them."""
    info: dict[str, Any] = {k: _json(v) for k, v in model.gguf.metadata.items()}
    info["general.parameter_count"] = model.gguf.parameter_count
    return dict(sorted(info.items()))


def modelfile(model: ResolvedModel) -> str:
    stored = model.stored.text(mt.MODELFILE_FILE)
    if stored is not None:
        return stored
    weights = model.stored.files.get(mt.WEIGHTS_FILE)
    parts = ModelParts(
        str(weights.digest if weights else model.weights),
        adapters=[str(d.digest) for _, d in model.stored.files.adapters],
        template=model.template,
        system=model.system or None,
        parameters=[
            (name, go_print(item))
            for name in sorted(model.params)
            for item in _items(model.params[name])
        ],
        messages=[(m.role, m.content) for m in model.messages],
    )
    return format_modelfile(parts.modelfile())


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _json(value: MetadataValue) -> Any:
    if isinstance(value, ArraySummary):
        return None
    if isinstance(value, tuple):
        return [_json(v) for v in value]
    return value
