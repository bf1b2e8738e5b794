"""Manifest endpoints: GET/HEAD by tag or digest, PUT (validated, ``?tag=`` extra tags), DELETE.

A PUT is refused unless every blob the manifest names is linked in the repository (and every
child of an index is there), each of the size its descriptor states; the check and the write
happen under the shared gc lock, so a concurrent ``mdl registry gc`` never sweeps what a new
manifest refers to.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mdl.registry import names
from mdl.registry.context import registry
from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.numbers import decimal
from mdl.registry.proxy import CACHE_STATUS
from mdl.registry.repos import Repositories, Revision
from mdl.registry.validation import KNOWN_TYPES, Checked, check
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.manifest import MAX_MANIFEST_BYTES
from mdl.spec.routes import MANIFEST


async def get(request: Request) -> Response:
    name = names.repository(request.path_params["name"])
    reference = names.reference(request.path_params["reference"])
    reg = registry(request)
    repos = reg.repos
    cache: dict[str, str] = {}
    if reg.proxy is not None:
        revision, cache[CACHE_STATUS] = await reg.proxy.revision(name, reference)
    else:
        revision = await run_in_threadpool(repos.resolve, name, reference)
    if not isinstance(reference, Digest) and not acceptable(
        request.headers.getlist("accept"), revision.media_type
    ):
        raise OCIError(
            ErrorCode.MANIFEST_UNKNOWN,
            f"{revision.media_type} found, but the Accept header does not allow it",
        )
    headers = {
        "Docker-Content-Digest": str(revision.digest),
        "ETag": f'"{revision.digest}"',
        "Content-Length": str(revision.size),
        **cache,
    }
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers, media_type=revision.media_type)
    data = await run_in_threadpool(repos.manifest_bytes, revision)
    return Response(data, status_code=200, headers=headers, media_type=revision.media_type)


def acceptable(accept_headers: list[str], media_type: str) -> bool:
    """Content negotiation: a client that lists manifest types must list this one.

    No Accept header, wildcards, or lists naming no manifest type at all accept anything.
    Several header lines and comma-separated lists with parameters are both understood.
    """
    wanted = {
        entry.split(";", 1)[0].strip().lower()
        for header in accept_headers
        for entry in header.split(",")
    }
    wanted.discard("")
    if not wanted & KNOWN_TYPES or wanted & {"*/*", "application/*"}:
        return True
    return media_type in wanted


async def put(request: Request) -> Response:
    name = names.repository(request.path_params["name"])
    reference = names.reference(request.path_params["reference"])
    extra_tags = [names.tag(t) for t in request.query_params.getlist("tag")]
    data = await _read_body(request)
    algorithm = reference.algorithm if isinstance(reference, Digest) else "sha256"
    digest = await run_in_threadpool(Digest.of, data, algorithm)
    if isinstance(reference, Digest) and digest != reference:
        raise OCIError(ErrorCode.DIGEST_INVALID, {"digest": str(reference), "actual": str(digest)})
    content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip() or None
    checked = await run_in_threadpool(check, data, content_type, digest)
    tags = [*([] if isinstance(reference, Digest) else [reference]), *extra_tags]
    repos = registry(request).repos
    await run_in_threadpool(_store, repos, name, digest, data, checked, tags)
    headers = {
        "Location": MANIFEST.path(name=name, reference=str(digest)),
        "Docker-Content-Digest": str(digest),
        "Content-Length": "0",
    }
    if checked.subject:
        headers["OCI-Subject"] = str(checked.subject)
    if extra_tags:
        headers["OCI-Tag"] = ", ".join(extra_tags)
    return Response(status_code=201, headers=headers)


async def _read_body(request: Request) -> bytes:
    declared = decimal(request.headers.get("content-length", "").strip())
    if declared is not None and declared > MAX_MANIFEST_BYTES:
        raise OCIError(ErrorCode.MANIFEST_TOO_LARGE, {"size": declared})
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_MANIFEST_BYTES:
            raise OCIError(ErrorCode.MANIFEST_TOO_LARGE, {"size": f">{MAX_MANIFEST_BYTES}"})
    return bytes(body)


def _store(
    repos: Repositories,
    name: str,
    digest: Digest,
    data: bytes,
    checked: Checked,
    tags: list[str],
) -> None:
    with repos.gc_lock():
        for blob in checked.blobs:
            _check_size(blob, repos.blob_size(name, blob.digest))
            repos.link_blob(name, blob.digest)
        for child in checked.manifests:
            if repos.has_revision(name, child.digest):
                size: int | None = repos.revision(name, child.digest).size
            else:
                size = repos.blob_size(name, child.digest)
            _check_size(child, size)
        revision = Revision(digest, checked.media_type, len(data), checked.subject)
        repos.put_manifest(name, revision, data, checked.referrer)
        for tag in tags:
            repos.tag(name, tag, digest)


def _check_size(descriptor: Descriptor, stored: int | None) -> None:
    """MANIFEST_BLOB_UNKNOWN when the repository lacks it, MANIFEST_INVALID when its size lies."""
    detail: dict[str, object] = {"digest": str(descriptor.digest)}
    if stored is None:
        raise OCIError(ErrorCode.MANIFEST_BLOB_UNKNOWN, detail)
    if stored != descriptor.size:
        detail |= {"size": descriptor.size, "stored": stored}
        raise OCIError(ErrorCode.MANIFEST_INVALID, detail)


async def delete(request: Request) -> Response:
    """By digest: the manifest and every tag naming it; by tag: only the tag."""
    name = names.repository(request.path_params["name"])
    reference = names.reference(request.path_params["reference"])
    repos = registry(request).repos
    if isinstance(reference, Digest):
        await run_in_threadpool(repos.delete_manifest, name, reference)
    else:
        await run_in_threadpool(repos.delete_tag, name, reference)
    return Response(status_code=202, headers={"Content-Length": "0"})
