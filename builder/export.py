"""Unpack a stored model into a plain directory of files (model.gguf, template, params.json…).

A split model's first shard is written as ``model-00001-of-0000N.gguf`` beside the others, so
llama.cpp loads the directory as it is.
"""

from __future__ import annotations

import shutil
from collections.abc import Set
from pathlib import Path, PurePosixPath

from mdl.builder.kinds import kind_of
from mdl.spec import mediatypes as mt
from mdl.spec.errors import BuildError
from mdl.store.models import StoredModel
from mdl.store.shards import loadable_name, weight_shards


def export_model(model: StoredModel, directory: Path, kinds: Set[str] | None = None) -> list[Path]:
    """Copy every layer (of ``kinds`` only, when given; see kinds.py) to
    ``directory/<org.cncf.model.filepath>``; returns the files written."""
    shards = len(weight_shards(model.files))
    written = []
    for filepath, desc in model.files.files.items():
        if kinds is not None and kind_of(filepath) not in kinds:
            continue
        relative = PurePosixPath(filepath)
        if relative.is_absolute() or ".." in relative.parts:
            raise BuildError(f"{desc.digest}: unsafe file path {filepath!r} in the manifest")
        if filepath == mt.WEIGHTS_FILE and shards > 1:
            relative = PurePosixPath(loadable_name(1, shards))
        target = directory.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model.store.blob_path(desc.digest), target)
        written.append(target)
    return written
