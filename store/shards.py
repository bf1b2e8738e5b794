"""Split GGUF models: one layer per shard, and the shard names llama.cpp needs to load them.

A split GGUF (``gguf-split``) is a set of files ``<prefix>-00001-of-00003.gguf`` … whose headers
carry ``split.no`` (0-based) and ``split.count``; the first holds the model's metadata. mdl
stores the first shard as ``model.gguf`` (so everything that reads a model's header finds it)
and shard N as ``model-0000N-of-0000M.gguf``. llama.cpp loads the first shard and opens the
others by replacing the number in its file name, so a store blob path will not do: the runtime
gets ``$MDL_HOME/shards/<manifest hex>/model-00001-of-0000M.gguf``, beside links to every shard.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.errors import StoreError
from mdl.spec.modelpack import ModelFiles
from mdl.store import layout
from mdl.store.models import StoredModel

_SHARD = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_STEM = mt.WEIGHTS_FILE.removesuffix(".gguf")


def shard_name(prefix: str, no: int, count: int) -> str:
    """llama.cpp's file name for shard ``no`` (1-based) of ``count``."""
    return f"{prefix}-{no:05d}-of-{count:05d}.gguf"


def parse_shard_name(name: str) -> tuple[str, int, int] | None:
    """(prefix, number, count) of a shard's file name; None for any other name."""
    match = _SHARD.match(name)
    if match is None:
        return None
    return match["prefix"], int(match["no"]), int(match["count"])


def shard_filepath(no: int, count: int) -> str:
    """The file path of shard ``no`` (1-based) inside a model: the first is ``model.gguf``."""
    return mt.WEIGHTS_FILE if no == 1 else shard_name(_STEM, no, count)


def is_weights_file(filepath: str) -> bool:
    """``model.gguf`` or one of its shards (``model-0000N-of-0000M.gguf``)."""
    parsed = parse_shard_name(filepath)
    return filepath == mt.WEIGHTS_FILE or (parsed is not None and parsed[0] == _STEM)


def loadable_name(no: int, count: int) -> str:
    """The name shard ``no`` of a split model must have for llama.cpp to load the set."""
    return shard_name(_STEM, no, count)


def weight_shards(files: ModelFiles) -> list[Descriptor]:
    """The weights' layers in shard order: ``[model.gguf]`` for a model in one file."""
    first = files.get(mt.WEIGHTS_FILE)
    if first is None:
        return []
    rest = {}
    for filepath, desc in files.files.items():
        parsed = parse_shard_name(filepath)
        if parsed and parsed[0] == _STEM:
            rest[parsed[1]] = (parsed[2], desc)
    if not rest:
        return [first]
    count = max(total for total, _ in rest.values())
    expected = set(range(2, count + 1))
    if set(rest) != expected or any(total != count for total, _ in rest.values()):
        missing = sorted(expected - set(rest))
        raise StoreError(
            f"the weights are split in {count} shards but the model lacks "
            + ", ".join(shard_filepath(no, count) for no in missing or sorted(rest))
        )
    return [first, *(rest[no][1] for no in range(2, count + 1))]


def weights_size(model: StoredModel) -> int:
    """The bytes of the weights, every shard counted."""
    return sum(desc.size for desc in weight_shards(model.files))


def weights_path(model: StoredModel) -> Path | None:
    """The path llama.cpp should load: the weights blob, or for a split model the first of
    links named as llama.cpp expects (made on first use, atomically)."""
    shards = weight_shards(model.files)
    if len(shards) <= 1:
        return model.path(mt.WEIGHTS_FILE)
    count = len(shards)
    home = model.store.root.parent
    directory = layout.shard_links(home, model.descriptor.digest)
    names = [loadable_name(no, count) for no in range(1, count + 1)]
    if not all((directory / name).exists() for name in names):
        _link(directory, names, [model.store.blob_path(d.digest) for d in shards])
    return directory / names[0]


def _link(directory: Path, names: list[str], blobs: list[Path]) -> None:
    temp = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(temp, ignore_errors=True)
    try:
        temp.mkdir(parents=True)
        for name, blob in zip(names, blobs, strict=True):
            (temp / name).symlink_to(blob)
        shutil.rmtree(directory, ignore_errors=True)
        os.rename(temp, directory)
    except OSError as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if not all((directory / name).exists() for name in names):  # another process won
            raise StoreError(f"cannot link the shards under {directory}: {exc}") from exc
