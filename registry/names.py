"""What URLs carry (repository names, tags, digests, upload ids), checked with ``mdl.spec``'s
one grammar and turned into the registry's errors.

Everything from a URL passes through here before it becomes a storage key, so no name can
climb out of its directory: the grammar excludes ``..``, empty components and absolute paths.
"""

from __future__ import annotations

import re

from mdl.registry.errors import ErrorCode, OCIError
from mdl.spec.digest import Digest
from mdl.spec.errors import InvalidReference
from mdl.spec.reference import is_repository, is_tag

_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")

__all__ = ["digest", "is_repository", "is_tag", "reference", "repository", "tag", "upload_id"]


def repository(name: str) -> str:
    """A valid repository name, or NAME_INVALID."""
    if not is_repository(name):
        raise OCIError(ErrorCode.NAME_INVALID, {"name": name[:300]})
    return name


def tag(text: str) -> str:
    if not is_tag(text):
        raise OCIError(ErrorCode.TAG_INVALID, {"tag": text[:300]})
    return text


def digest(text: str) -> Digest:
    """A supported digest (sha256 or sha512, lower-case hex), or DIGEST_INVALID."""
    try:
        return Digest.parse(text)
    except InvalidReference:
        raise OCIError(ErrorCode.DIGEST_INVALID, {"digest": text[:300]}) from None


def reference(text: str) -> str | Digest:
    """A manifest reference: a tag, or a digest when it holds a ``:``."""
    return digest(text) if ":" in text else tag(text)


def upload_id(text: str) -> str:
    if not _UPLOAD_ID.fullmatch(text):
        raise OCIError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"uuid": text[:100]})
    return text
