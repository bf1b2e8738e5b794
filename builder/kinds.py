"""What kind of file each layer of a model is, by its file path: the words ``mdl export
--filter`` takes and ``mdl diff`` reports."""

from __future__ import annotations

from mdl.spec import mediatypes as mt
from mdl.spec.errors import BuildError
from mdl.spec.modelpack import is_license_filepath
from mdl.store.shards import is_weights_file

KINDS = (
    "model",
    "adapter",
    "projector",
    "draft",
    "template",
    "system",
    "params",
    "messages",
    "license",
    "modelfile",
    "other",
)
_FIXED = {
    mt.WEIGHTS_FILE: "model",
    mt.PROJECTOR_FILE: "projector",
    mt.DRAFT_FILE: "draft",
    mt.TEMPLATE_FILE: "template",
    mt.SYSTEM_FILE: "system",
    mt.PARAMS_FILE: "params",
    mt.MESSAGES_FILE: "messages",
    mt.MODELFILE_FILE: "modelfile",
}


def kind_of(filepath: str) -> str:
    """``model`` for the weights and every shard of split weights; ``other`` for files mdl does
    not know (a foreign model's extras)."""
    if filepath in _FIXED:
        return _FIXED[filepath]
    if filepath.startswith(mt.ADAPTER_DIR):
        return "adapter"
    if is_license_filepath(filepath):
        return "license"
    return "model" if is_weights_file(filepath) else "other"


def parse_kinds(text: str) -> frozenset[str]:
    """``model,template,license`` -> the set; an unknown word is an error listing the valid ones."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    unknown = [w for w in words if w not in KINDS]
    if unknown or not words:
        what = f"unknown kind {', '.join(repr(w) for w in unknown)}" if unknown else "no kind"
        raise BuildError(f"--filter: {what}; valid kinds are {', '.join(KINDS)}")
    return frozenset(words)
