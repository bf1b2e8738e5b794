"""Unpack a stored model into a plain directory of files (model.gguf, template, params.json…)."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

from mdl.spec.errors import BuildError
from mdl.store.models import StoredModel


def export_model(model: StoredModel, directory: Path) -> list[Path]:
    """Copy every layer to ``directory/<org.cncf.model.filepath>``; returns the files written."""
    written = []
    for filepath, desc in model.files.files.items():
        relative = PurePosixPath(filepath)
        if relative.is_absolute() or ".." in relative.parts:
            raise BuildError(f"{desc.digest}: unsafe file path {filepath!r} in the manifest")
        target = directory.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model.store.blob_path(desc.digest), target)
        written.append(target)
    return written
