"""What a pushed manifest must satisfy beyond ``mdl.spec.manifest.parse`` (image spec v1.1).

``check`` parses once and returns everything the registry needs from the document: the media
type to serve it with, the blobs and manifests that must already be in the repository, and the
subject and referrer descriptor for the referrers API. Descriptors with ``data`` must carry
exactly their content; non-distributable layers may be absent, as the image spec allows.

The JSON itself is read strictly first: a key twice in one object (parsers disagree on which
one wins), numbers past int64, ``NaN``/``Infinity`` and nesting deeper than the parser's
recursion limit are MANIFEST_INVALID.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mdl.registry.errors import ErrorCode, OCIError
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.manifest import Index, InvalidManifest, Manifest, parse

FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)
KNOWN_TYPES = mt.MANIFEST_TYPES | mt.INDEX_TYPES


@dataclass(frozen=True)
class Checked:
    media_type: str
    blobs: tuple[Descriptor, ...]
    """Config and layers: blobs the repository must link, of these sizes."""
    manifests: tuple[Descriptor, ...]
    """An index's children: manifests (or blobs) the repository must hold, of these sizes."""
    subject: Digest | None
    referrer: dict[str, Any] | None
    """The descriptor the referrers API lists for this manifest (when it has a subject)."""


def check(data: bytes, content_type: str | None, digest: Digest) -> Checked:
    """Validate a manifest or index as pushed (its size was checked as it was read);
    MANIFEST_INVALID otherwise."""
    declared = content_type if content_type in KNOWN_TYPES else None
    _strict_json(data)
    try:
        document = parse(data, declared)
    except InvalidManifest as exc:
        raise OCIError(ErrorCode.MANIFEST_INVALID, str(exc)) from None
    if isinstance(document, Manifest):
        descriptors: tuple[Descriptor, ...] = document.blobs
        blobs = tuple(d for d in document.blobs if d.media_type not in FOREIGN_LAYER_TYPES)
        manifests: tuple[Descriptor, ...] = ()
        artifact_type: str | None = document.artifact_type or document.config.media_type
    else:
        descriptors = document.manifests
        blobs = ()
        manifests = document.manifests
        artifact_type = document.artifact_type
    subject = document.subject
    _check_data(d for d in (*descriptors, *([subject] if subject else [])))
    referrer = _referrer(document, data, digest, artifact_type) if subject else None
    return Checked(
        document.media_type, blobs, manifests, subject.digest if subject else None, referrer
    )


MAX_INT_DIGITS = 19
"""int64, the image spec's type for sizes."""


class _Duplicate(ValueError):
    pass


def _strict_json(data: bytes) -> None:
    try:
        json.loads(
            data,
            object_pairs_hook=_unique_keys,
            parse_int=_bounded_int,
            parse_constant=_no_constant,
        )
    except RecursionError:
        raise OCIError(ErrorCode.MANIFEST_INVALID, "JSON nested too deeply") from None
    except _Duplicate as exc:
        raise OCIError(ErrorCode.MANIFEST_INVALID, str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return  # spec's parse names the syntax error
    except ValueError as exc:
        raise OCIError(ErrorCode.MANIFEST_INVALID, str(exc)) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Duplicate(f"duplicate JSON key {key[:100]!r}")
        seen.add(key)
    return dict(pairs)


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"number {text[:30]}… does not fit in 64 bits")
    return int(text)


def _no_constant(text: str) -> None:
    raise ValueError(f"{text} is not JSON")


def _check_data(descriptors: Iterable[Descriptor]) -> None:
    for descriptor in descriptors:
        data = descriptor.extra.get("data")
        if data is None:
            continue
        try:
            content = base64.b64decode(data, validate=True) if isinstance(data, str) else None
        except (binascii.Error, ValueError):
            content = None
        if content is None or len(content) != descriptor.size:
            raise OCIError(ErrorCode.MANIFEST_INVALID, f"{descriptor.digest}: invalid data field")
        if Digest.of(content, descriptor.digest.algorithm) != descriptor.digest:
            raise OCIError(ErrorCode.MANIFEST_INVALID, f"{descriptor.digest}: data does not match")


def _referrer(
    document: Manifest | Index, data: bytes, digest: Digest, artifact_type: str | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "mediaType": document.media_type,
        "digest": str(digest),
        "size": len(data),
    }
    if artifact_type:
        entry["artifactType"] = artifact_type
    if document.annotations:
        entry["annotations"] = dict(document.annotations)
    return entry
