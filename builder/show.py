"""What ``mdl show`` reports about a stored model, and the Modelfile that rebuilds it."""

from __future__ import annotations

from typing import Any

from mdl.builder.recipe import param_text
from mdl.spec import mediatypes as mt
from mdl.spec.errors import StoreError
from mdl.spec.modelfile import ModelParts, format_modelfile
from mdl.spec.modelpack import ANNOTATION_TEMPLATE_FORMAT
from mdl.spec.parameters import parse_params_json
from mdl.store.models import StoredModel


def model_summary(model: StoredModel) -> dict[str, Any]:
    """The ``mdl show --json`` document (stable keys, documented in docs/cli.md)."""
    params = model.text(mt.PARAMS_FILE)
    template_desc = model.files.get(mt.TEMPLATE_FILE)
    return {
        "digest": str(model.descriptor.digest),
        "size": model.size,
        "architecture": model.config.architecture,
        "format": model.config.format,
        "input_types": list(model.config.input_types),
        "parameter_size": model.config.param_size,
        "quantization": model.config.quantization,
        "context_length": model.config.context_length,
        "name": model.config.name,
        "files": {path: str(desc.digest) for path, desc in model.files.files.items()},
        "adapters": [path for path, _ in model.files.adapters],
        "parameters": parse_params_json(params.encode()) if params else {},
        "template": model.text(mt.TEMPLATE_FILE),
        "template_format": template_desc.annotations.get(ANNOTATION_TEMPLATE_FORMAT)
        if template_desc
        else None,
        "system": model.text(mt.SYSTEM_FILE),
        "messages": model.json(mt.MESSAGES_FILE) or [],
        "licenses": [model.store.read_blob(d).decode() for d in model.files.licenses],
        "annotations": dict(model.manifest.annotations),
    }


def model_modelfile(model: StoredModel) -> str:
    """The stored Modelfile layer; for a model built elsewhere, one written from its parts."""
    stored = model.text(mt.MODELFILE_FILE)
    if stored is not None:
        return stored
    summary = model_summary(model)
    weights = model.files.weights
    if weights is None:
        raise StoreError(f"{model.descriptor.digest}: no {mt.WEIGHTS_FILE} layer to write FROM for")
    parts = ModelParts(
        str(weights.digest),
        adapters=[str(d.digest) for _, d in model.files.adapters],
        template=summary["template"],
        system=summary["system"],
        parameters=[
            (name, param_text(item))
            for name, value in summary["parameters"].items()
            for item in (value if isinstance(value, list) else [value])
        ],
        messages=[(m["role"], m["content"]) for m in summary["messages"]],
        licenses=summary["licenses"],
    )
    return format_modelfile(parts.modelfile())
