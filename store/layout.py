"""Where everything lives under ``$MDL_HOME``; the only module that joins store paths.

::

    $MDL_HOME/                      (default ~/.mdl)
    ├── store/                      an OCI image layout (oci-layout, index.json, blobs/)
    │   ├── oci-layout              {"imageLayoutVersion": "1.0.0"}
    │   ├── index.json              one entry per tag; annotation org.opencontainers.image.ref.name
    │   │                           holds the full reference ("tiny:latest", "host:5000/ns/m:1.0")
    │   ├── mdl-store.json          {"version": N}: the store format, for later migrations
    │   ├── blobs/<alg>/<hex>       content, verified and read-only (0444)
    │   ├── ingest/<id>             blobs being written; renamed into blobs/ once verified
    │   ├── .lock                   flock: writers hold it shared, sweeps (rm, prune) exclusive
    │   └── .index.lock             flock: serialises read-modify-write of index.json
    ├── cache/files/<sha256(path)>  digest of a source file by (size, mtime, inode): builds skip
    │                               re-hashing an unchanged GGUF
    ├── cache/derived/<sha256(key)> digest of a quantized GGUF by (source digest, type, quantizer)
├── shards/<manifest hex>/      symlinks named <prefix>-0000N-of-0000M.gguf to the blobs of a
│                               split GGUF, so llama.cpp finds every shard by name
    └── policy.json                 the trust policy pull and serve enforce (MDL_POLICY moves it)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mdl.spec.digest import Digest

STORE_VERSION = 1
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def home() -> Path:
    """``$MDL_HOME``, or ``~/.mdl``."""
    return Path(os.environ.get("MDL_HOME") or Path.home() / ".mdl")


def mirrors_file(mdl_home: Path) -> Path:
    """Registry mirrors pulls try first (``client/mirrors.py``)."""
    return mdl_home / "mirrors.toml"


def store_root(mdl_home: Path) -> Path:
    return mdl_home / "store"


def oci_layout_file(root: Path) -> Path:
    return root / "oci-layout"


def index_file(root: Path) -> Path:
    return root / "index.json"


def version_file(root: Path) -> Path:
    return root / "mdl-store.json"


def blobs_dir(root: Path) -> Path:
    return root / "blobs"


def blob_name(digest: Digest) -> str:
    """A blob's path inside an OCI layout (and inside a layout's tar)."""
    return f"blobs/{digest.algorithm}/{digest.hex}"


def blob(root: Path, digest: Digest) -> Path:
    return root / blob_name(digest)


def ingest_dir(root: Path) -> Path:
    return root / "ingest"


def ingest_file(root: Path, name: str) -> Path:
    return ingest_dir(root) / name


def store_lock(root: Path) -> Path:
    return root / ".lock"


def index_lock(root: Path) -> Path:
    return root / ".index.lock"


def shard_links(mdl_home: Path, manifest: Digest) -> Path:
    """The directory where a split model's shards appear under their shard file names."""
    return shard_links_root(mdl_home) / manifest.hex


def shard_links_root(mdl_home: Path) -> Path:
    return mdl_home / "shards"


def policy_file(mdl_home: Path) -> Path:
    """The trust policy: ``$MDL_POLICY``, else ``$MDL_HOME/policy.json``."""
    return Path(os.environ.get("MDL_POLICY") or mdl_home / "policy.json")


def file_cache(mdl_home: Path, source: Path) -> Path:
    key = hashlib.sha256(os.fsencode(source)).hexdigest()
    return mdl_home / "cache" / "files" / key


def derived_cache(mdl_home: Path, key: str) -> Path:
    """The record of content derived from a blob (a quantization), by what it was derived with."""
    return mdl_home / "cache" / "derived" / hashlib.sha256(key.encode()).hexdigest()
