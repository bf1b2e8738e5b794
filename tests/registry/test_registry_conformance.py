"""The OCI distribution-spec conformance suite (opencontainers/distribution-spec ``conformance/``,
the v1.1 runner with every data set and API its defaults enable, plus tag parameters and upload
cancel), ported case by case to Python and run against ``mdl registry serve``.

Covered, as in its ``run.go``: ping; the empty tag list and referrers; for sha256 and sha512
blobs: get-missing, post only, post+put, chunked single, chunked multi, chunked multi with a PUT
last chunk, chunked out-of-order (with and without PUT), stream, mount, anonymous mount, mount
of a missing blob, post cancel, each followed by HEAD, GET and delete; range requests (500-1499,
500-, -500, 2000-5000, 500-0, 5000-10000); the empty and ``{}`` blobs; bad digests for every
upload style. Then every data set (image, uncompressed image, large manifest, index, nested
index, empty index, artifact, artifact index, artifact without layers, artifacts with subject,
index with subject, missing subject, data field, non-distributable layers, custom fields, no
layers, sha512 index, tag parameters with sha256 and sha512, a manifest with a bad digest) is
pushed, listed (``last`` too), HEADed, pulled, its referrers listed and filtered, and deleted
with atomicity checks; then the manifest error cases. Only ``sparse`` (off by default upstream,
and refused here by design: an index must not name absent manifests) is left out.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import secrets
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from oci import digest

MT_CONF1 = "application/vnd.example.oci.conformance.v1"
MT_CONF2 = "application/vnd.example.oci.conformance.v2"
OCTET = "application/octet-stream"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_IMAGE = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZ = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
CHUNK_MIN = 1024
ACCEPT = [("Accept", OCI_INDEX), ("Accept", OCI_IMAGE)]


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class DataSet:
    """One data set, as the upstream ``testData``: blobs, manifests in push order, tags."""

    algo: str = "sha256"
    blobs: dict[str, bytes] = field(default_factory=dict)
    desc: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    referrers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tag_param: set[str] = field(default_factory=set)
    bad_digest: set[str] = field(default_factory=set)

    def add_blob(self, data: bytes, media_type: str = OCTET, set_data: bool = False) -> str:
        dgst = digest(data, self.algo)
        self.blobs[dgst] = data
        self.desc[dgst] = {"mediaType": media_type, "digest": dgst, "size": len(data)}
        if set_data:
            self.desc[dgst]["data"] = base64.b64encode(data).decode()
        return dgst

    def layer(self, number: int, compress: bool = True, set_data: bool = False) -> tuple[str, str]:
        content = f"Conformance test file {number}.\nlucky number {secrets.randbits(60)}\n"
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo(f"./conformance-{number}.txt")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content.encode()))
        uncompressed = raw.getvalue()
        body = gzip.compress(uncompressed, mtime=0) if compress else uncompressed
        dgst = self.add_blob(body, OCI_LAYER_GZ if compress else OCI_LAYER, set_data)
        return dgst, digest(uncompressed, self.algo)

    def manifest(
        self,
        config: dict[str, Any],
        layers: list[dict[str, Any]],
        *,
        tag: str | None = None,
        artifact_type: str | None = None,
        subject: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
        unique: bool = False,
        extra: bool = False,
        set_data: bool = False,
    ) -> str:
        m: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_IMAGE}
        if artifact_type:
            m["artifactType"] = artifact_type
        m["config"] = config
        m["layers"] = layers
        if subject:
            m["subject"] = subject
        if annotations or unique:
            m["annotations"] = dict(annotations or {})
        if unique:
            m["annotations"][f"org.example.{secrets.token_hex(8)}"] = secrets.token_hex(8)
        if extra:
            m[f"x-custom-{secrets.token_hex(4)}"] = {"random": secrets.token_hex(8)}
        return self._add_manifest(m, OCI_IMAGE, tag, artifact_type or config["mediaType"], set_data)

    def index(
        self,
        children: list[tuple[str, dict[str, str] | None]],
        *,
        tag: str | None = None,
        artifact_type: str | None = None,
        subject: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None,
        unique: bool = False,
        extra: bool = False,
    ) -> str:
        m: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX}
        if artifact_type:
            m["artifactType"] = artifact_type
        entries = []
        for dgst, platform in children:
            entry = dict(self.desc[dgst])
            if platform:
                entry["platform"] = platform
            entries.append(entry)
        m["manifests"] = entries
        if subject:
            m["subject"] = subject
        if annotations or unique:
            m["annotations"] = dict(annotations or {})
        if unique:
            m["annotations"][f"org.example.{secrets.token_hex(8)}"] = secrets.token_hex(8)
        if extra:
            m[f"x-custom-{secrets.token_hex(4)}"] = {"random": secrets.token_hex(8)}
        return self._add_manifest(m, OCI_INDEX, tag, artifact_type, False)

    def _add_manifest(
        self,
        m: dict[str, Any],
        media_type: str,
        tag: str | None,
        artifact_type: str | None,
        set_data: bool,
    ) -> str:
        body = compact(m)
        dgst = self.add_blob(body, media_type, set_data)
        del self.blobs[dgst]
        self.manifests[dgst] = body
        if m.get("subject"):
            entry = {"mediaType": media_type, "digest": dgst, "size": len(body)}
            if artifact_type:
                entry["artifactType"] = artifact_type
            if m.get("annotations"):
                entry["annotations"] = m["annotations"]
            self.referrers.setdefault(m["subject"]["digest"], []).append(entry)
        if tag:
            self.tags[tag] = dgst
        return dgst

    def full_manifest(
        self,
        *,
        layer_count: int = 2,
        compress: bool = True,
        platform: dict[str, str] | None = None,
        config_media_type: str | None = None,
        config_bytes: bytes | None = None,
        layer_media_type: str | None = None,
        layer_bytes: bytes | None = None,
        set_data: bool = False,
        extra: bool = False,
        **kwargs: Any,
    ) -> str:
        layers, diff_ids = [], []
        for number in range(layer_count):
            if layer_media_type is None or layer_media_type.startswith(
                "application/vnd.oci.image.layer.v1."
            ):
                dgst, diff_id = self.layer(number, compress, set_data)
            else:
                content = layer_bytes if layer_bytes is not None else os.urandom(2048)
                dgst = diff_id = self.add_blob(content, layer_media_type, set_data)
            layers.append(self.desc[dgst])
            diff_ids.append(diff_id)
        if config_media_type in (None, OCI_CONFIG):
            config = {
                "author": "OCI Conformance Test",
                **(platform or {"os": "linux", "architecture": "amd64"}),
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
            if extra:
                config["x-custom"] = secrets.token_hex(4)
            config_digest = self.add_blob(compact(config), OCI_CONFIG, set_data)
        else:
            config_digest = self.add_blob(config_bytes or b"{}", config_media_type, set_data)
        return self.manifest(
            self.desc[config_digest], layers, extra=extra, set_data=set_data, **kwargs
        )

    def full_index(
        self, platforms: list[dict[str, str]] | None = None, *, extra: bool = False, **kwargs: Any
    ) -> str:
        if platforms is None:
            platforms = [
                {"os": "linux", "architecture": "amd64"},
                {"os": "linux", "architecture": "arm64"},
            ]
        index_keys = ("tag", "artifact_type", "subject", "annotations", "unique")
        index_kwargs = {k: kwargs[k] for k in index_keys if k in kwargs}
        # upstream hands every option to the children too (their tag is then overwritten)
        children = [(self.full_manifest(platform=p, extra=extra, **kwargs), p) for p in platforms]
        return self.index(children, extra=extra, **index_kwargs)


def generate(name: str) -> DataSet:
    """The upstream ``GenerateData`` data sets, by name."""
    td = DataSet()
    if name == "image":
        td.full_manifest(tag="image")
    elif name == "image-uncompressed":
        td.full_manifest(tag="image-uncompressed", compress=False)
    elif name == "large-manifest":
        large = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}
        td.full_manifest(tag="large-manifest", annotations=large)
    elif name == "index":
        td.full_index(tag="index")
    elif name == "nested-index":
        first, second = td.full_index(), td.full_index()
        td.index([(first, None), (second, None)], tag="index-of-index")
    elif name == "empty-index":
        td.full_index([], tag="index")
    elif name == "artifact":
        td.full_manifest(
            tag="artifact",
            artifact_type=MT_CONF1,
            config_media_type=OCI_EMPTY,
            config_bytes=b"{}",
            layer_count=1,
            layer_media_type=MT_CONF1,
        )
    elif name == "artifact-index":
        td.full_index(
            tag="artifact-index",
            artifact_type=MT_CONF1,
            config_media_type=OCI_EMPTY,
            config_bytes=b"{}",
            layer_count=1,
            layer_media_type=MT_CONF1,
        )
    elif name == "artifact-without-layers":
        td.full_manifest(
            tag="artifact-without-layers",
            artifact_type=MT_CONF1,
            config_media_type=OCI_EMPTY,
            config_bytes=b"{}",
            layer_count=1,
            layer_bytes=b"{}",
            layer_media_type=OCI_EMPTY,
        )
    elif name == "artifacts-with-subject":
        subject_digest = td.full_manifest(tag="image")
        subject = td.desc[subject_digest]
        td.full_manifest(subject=subject)
        for tag, artifact_type, layer_type in (
            ("tagged-artifact1", MT_CONF1, MT_CONF1),
            ("tagged-artifact2", MT_CONF2, OCTET),
        ):
            td.full_manifest(
                tag=tag,
                artifact_type=artifact_type,
                annotations={"org.opencontainers.conformance": "hello conformance test"},
                unique=True,
                config_media_type=OCI_EMPTY,
                config_bytes=b"{}",
                layer_count=1,
                layer_media_type=layer_type,
                subject=subject,
            )
    elif name == "index-with-subject":
        subject = td.desc[td.full_index(tag="index")]
        td.full_index(
            tag="tagged-artifact",
            artifact_type=MT_CONF1,
            annotations={"org.opencontainers.conformance": "hello conformance test"},
            unique=True,
            config_media_type=OCI_EMPTY,
            config_bytes=b"{}",
            layer_count=1,
            layer_media_type=MT_CONF1,
            subject=subject,
        )
    elif name == "missing-subject":
        subject = {"mediaType": OCI_IMAGE, "size": 123, "digest": digest(b"missing content")}
        td.full_manifest(
            tag="tagged-artifact",
            artifact_type=MT_CONF1,
            annotations={"org.opencontainers.conformance": "hello conformance test"},
            unique=True,
            config_media_type=OCI_EMPTY,
            config_bytes=b"{}",
            layer_count=1,
            layer_media_type=MT_CONF1,
            subject=subject,
        )
    elif name == "data-field":
        td.full_manifest(tag="data-field", set_data=True)
    elif name == "non-distributable-layers":
        foreign = []
        for media_type, size in ((OCI_LAYER_ND_GZ, 123456), (OCI_LAYER_ND, 12345)):
            dgst = digest(os.urandom(256))
            foreign.append(
                {
                    "mediaType": media_type,
                    "digest": dgst,
                    "size": size,
                    "urls": [f"https://store.example.com/blobs/sha256/{dgst[7:]}"],
                }
            )
        normal, diff_id = td.layer(1)
        config = {"os": "linux", "architecture": "amd64", "rootfs": {"diff_ids": [diff_id]}}
        config_digest = td.add_blob(compact(config), OCI_CONFIG)
        td.manifest(
            td.desc[config_digest], [*foreign, td.desc[normal]], tag="non-distributable-image"
        )
    elif name == "custom-fields":
        td.full_index(tag="custom-fields", extra=True)
    elif name == "no-layers":
        td.full_manifest(tag="no-layers", layer_count=0)
    elif name == "sha512":
        td.algo = "sha512"
        td.full_index()
    elif name in ("tag-param-sha256", "tag-param-sha512"):
        td.algo = name.rsplit("-", 1)[1]
        td.full_index(tag=name)
        for number, dgst in enumerate(list(td.manifests)):
            td.tags[f"{name}-{number}"] = dgst
            td.tag_param.add(dgst)
    elif name == "bad-digest-image":
        dgst = td.full_manifest()
        td.manifests[dgst] += b"  "
        td.bad_digest.add(dgst)
    else:
        raise AssertionError(name)
    return td


DATA_SETS = [
    "image",
    "image-uncompressed",
    "large-manifest",
    "index",
    "nested-index",
    "empty-index",
    "artifact",
    "artifact-index",
    "artifact-without-layers",
    "artifacts-with-subject",
    "index-with-subject",
    "missing-subject",
    "data-field",
    "non-distributable-layers",
    "custom-fields",
    "no-layers",
    "sha512",
    "tag-param-sha256",
    "tag-param-sha512",
    "bad-digest-image",
]


# blob push APIs (api.go)


def verify_location(http: httpx.Client, response: httpx.Response, body: bytes) -> None:
    location = response.headers["location"]
    assert http.get(location).content == body


def post_only(http: httpx.Client, repo: str, dgst: str, body: bytes, bad: bool = False) -> None:
    response = http.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": dgst},
        content=body,
        headers={"Content-Type": OCTET},
    )
    if bad:
        assert response.status_code == 400
        return
    assert response.status_code == 201
    assert response.headers["docker-content-digest"] == dgst
    verify_location(http, response, body)


def post_put(http: httpx.Client, repo: str, dgst: str, body: bytes, bad: bool = False) -> None:
    location = http.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    response = http.put(location, params={"digest": dgst}, content=body)
    if bad:
        assert response.status_code == 400
        return
    assert response.status_code == 201
    assert response.headers["docker-content-digest"] == dgst
    verify_location(http, response, body)


def patch_stream(http: httpx.Client, repo: str, dgst: str, body: bytes, bad: bool = False) -> None:
    location = http.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert location.status_code == 202
    patched = http.patch(
        location.headers["location"], content=iter([body]), headers={"Content-Type": OCTET}
    )
    assert patched.status_code == 202
    response = http.put(patched.headers["location"], params={"digest": dgst})
    if bad:
        assert response.status_code == 400
        return
    assert response.status_code == 201
    verify_location(http, response, body)


def patch_chunked(
    http: httpx.Client,
    repo: str,
    dgst: str,
    body: bytes,
    bad: bool = False,
    put_last: bool = False,
    out_of_order: bool = False,
) -> None:
    started = http.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert started.status_code == 202
    location = started.headers["location"]
    chunk = min(max(len(body) // 3 + 1, CHUNK_MIN), len(body))
    last_byte = -1
    response = started
    while last_byte < len(body) - 1:
        if out_of_order:
            bad_start = last_byte + 1 + chunk
            if bad_start >= len(body):
                bad_start = 0
            bad_last = min(bad_start + chunk - 1, len(body) - 1)
            is_put = put_last and bad_last == len(body) - 1
            refused = http.request(
                "PUT" if is_put else "PATCH",
                location,
                params={"digest": dgst} if is_put else None,
                content=body[bad_start : bad_last + 1],
                headers={"Content-Range": f"{bad_start}-{bad_last}", "Content-Type": OCTET},
            )
            assert refused.status_code == 416
            status = http.get(location)
            assert status.status_code == 204
            assert status.headers["range"].startswith("0-")
            if last_byte >= 0:
                assert status.headers["range"] == f"0-{last_byte}"
            location = status.headers["location"]
        start = last_byte + 1
        last_byte = min(start + chunk - 1, len(body) - 1)
        final = put_last and last_byte == len(body) - 1
        response = http.request(
            "PUT" if final else "PATCH",
            location,
            params={"digest": dgst} if final else None,
            content=body[start : last_byte + 1],
            headers={"Content-Range": f"{start}-{last_byte}", "Content-Type": OCTET},
        )
        if final:
            if bad:
                assert response.status_code == 400
                return
            assert response.status_code == 201
        else:
            assert response.status_code == 202, response.text
            location = response.headers["location"]
    if not put_last:
        response = http.put(location, params={"digest": dgst}, headers={"Content-Length": "0"})
        if bad:
            assert response.status_code == 400
            return
        assert response.status_code == 201
    assert response.headers["docker-content-digest"] == dgst
    verify_location(http, response, body)


PUSHERS: list[Callable[[httpx.Client, str, str, bytes], None]] = [
    post_put,
    post_only,
    patch_stream,
    patch_chunked,
]


class Rotation:
    """``TestPushBlobAny``: spread blob pushes over every upload style."""

    def __init__(self) -> None:
        self.turn = 0

    def push(self, http: httpx.Client, repo: str, dgst: str, body: bytes) -> None:
        PUSHERS[self.turn % len(PUSHERS)](http, repo, dgst, body)
        self.turn += 1


def head_blob(http: httpx.Client, repo: str, dgst: str, body: bytes) -> None:
    response = http.head(f"/v2/{repo}/blobs/{dgst}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(body))
    assert response.headers["docker-content-digest"] == dgst


def get_blob(http: httpx.Client, repo: str, dgst: str, body: bytes) -> None:
    response = http.get(f"/v2/{repo}/blobs/{dgst}")
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-length"] == str(len(body))
    assert response.headers["docker-content-digest"] == dgst


def delete_blob(http: httpx.Client, repo: str, dgst: str) -> None:
    response = http.delete(f"/v2/{repo}/blobs/{dgst}")
    assert response.status_code in (202, 404)
    assert http.head(f"/v2/{repo}/blobs/{dgst}").status_code == 404


@pytest.fixture
def repos(repo: str) -> tuple[str, str]:
    return f"{repo}/repo1", f"{repo}/repo2"


def test_ping(http: httpx.Client) -> None:
    assert http.get("/v2/").status_code == 200


def test_empty_tag_list_and_referrers(http: httpx.Client, repos: tuple[str, str]) -> None:
    repo1, _ = repos
    assert http.get(f"/v2/{repo1}/tags/list").status_code in (200, 404)
    response = http.get(f"/v2/{repo1}/referrers/{digest(secrets.token_bytes(16))}")
    assert response.status_code == 200
    assert response.headers["content-type"] == OCI_INDEX
    assert response.json()["manifests"] == []


BLOB_API_TESTS = [
    "post only",
    "post+put",
    "chunked single",
    "stream",
    "mount",
    "mount anonymous",
    "mount missing",
    "post cancel",
    "chunked multi",
    "chunked multi and put chunk",
    "chunked out-of-order",
    "chunked out-of-order and put chunk",
]


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
@pytest.mark.parametrize("api", BLOB_API_TESTS)
def test_blob_apis(http: httpx.Client, repos: tuple[str, str], algo: str, api: str) -> None:
    repo1, repo2 = repos
    size = CHUNK_MIN * 3 - 5 if api.startswith("chunked multi") or "order" in api else 512
    body = os.urandom(size)
    dgst = digest(body, algo)
    assert http.get(f"/v2/{repo1}/blobs/{dgst}").status_code == 404
    if api == "post only":
        post_only(http, repo1, dgst, body)
    elif api == "post+put":
        post_put(http, repo1, dgst, body)
    elif api == "stream":
        patch_stream(http, repo1, dgst, body)
    elif api.startswith("chunked"):
        patch_chunked(
            http, repo1, dgst, body, put_last="put chunk" in api, out_of_order="order" in api
        )
    elif api == "post cancel":
        location = http.post(f"/v2/{repo1}/blobs/uploads/").headers["location"]
        assert http.delete(location, headers={"Content-Length": "0"}).status_code == 204
    elif api in ("mount", "mount anonymous"):
        post_put(http, repo2, dgst, body)
        params = {"mount": dgst, **({"from": repo2} if api == "mount" else {})}
        response = http.post(f"/v2/{repo1}/blobs/uploads/", params=params)
        assert response.status_code == 201
        assert response.headers["docker-content-digest"] == dgst
        verify_location(http, response, body)
    elif api == "mount missing":
        response = http.post(f"/v2/{repo1}/blobs/uploads/", params={"mount": dgst, "from": repo2})
        assert response.status_code == 202
        response = http.put(response.headers["location"], params={"digest": dgst}, content=body)
        assert response.status_code == 201
    if api != "post cancel":
        head_blob(http, repo1, dgst, body)
        get_blob(http, repo1, dgst, body)
    delete_blob(http, repo1, dgst)
    if api in ("mount", "mount anonymous"):
        head_blob(http, repo2, dgst, body)
        delete_blob(http, repo2, dgst)


RANGES = [
    ("bytes=500-1499", 206, slice(500, 1500), "bytes 500-1499/2048"),
    ("bytes=500-", 206, slice(500, None), "bytes 500-2047/2048"),
    ("bytes=-500", 206, slice(1548, None), "bytes 1548-2047/2048"),
    ("bytes=2000-5000", 206, slice(2000, None), "bytes 2000-2047/2048"),
    ("bytes=500-0", 416, None, None),
    ("bytes=5000-10000", 416, None, None),
]


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_range_requests(http: httpx.Client, repos: tuple[str, str], algo: str) -> None:
    repo1, _ = repos
    body = os.urandom(2048)
    dgst = digest(body, algo)
    post_put(http, repo1, dgst, body)
    for header, status, part, content_range in RANGES:
        response = http.get(f"/v2/{repo1}/blobs/{dgst}", headers={"Range": header})
        assert response.status_code == status, header
        if part is not None:
            assert response.content == body[part]
            assert response.headers["content-length"] == str(len(body[part]))
            assert response.headers["content-range"] == content_range
    delete_blob(http, repo1, dgst)


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
@pytest.mark.parametrize("content", [b"", b"{}"], ids=["empty", "emptyJSON"])
def test_well_known_blobs(
    http: httpx.Client, repos: tuple[str, str], algo: str, content: bytes
) -> None:
    repo1, _ = repos
    dgst = digest(content, algo)
    for pusher in PUSHERS:
        pusher(http, repo1, dgst, content)
        head_blob(http, repo1, dgst, content)
        get_blob(http, repo1, dgst, content)
        delete_blob(http, repo1, dgst)


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
@pytest.mark.parametrize(
    "style", ["post only", "post+put", "chunked", "chunked and put chunk", "stream"]
)
def test_bad_digest_uploads_are_400(
    http: httpx.Client, repos: tuple[str, str], algo: str, style: str
) -> None:
    repo1, _ = repos
    body = os.urandom(CHUNK_MIN * 3 - 5)
    dgst = digest(body, algo)
    corrupt = body + b"oh no"
    if style == "post only":
        post_only(http, repo1, dgst, corrupt, bad=True)
    elif style == "post+put":
        post_put(http, repo1, dgst, corrupt, bad=True)
    elif style == "stream":
        patch_stream(http, repo1, dgst, corrupt, bad=True)
    else:
        patch_chunked(http, repo1, dgst, corrupt, bad=True, put_last="put" in style)
    assert http.head(f"/v2/{repo1}/blobs/{dgst}").status_code == 404


def push_data(http: httpx.Client, repo: str, td: DataSet) -> None:
    rotation = Rotation()
    for dgst, body in td.blobs.items():
        rotation.push(http, repo, dgst, body)
    for dgst, body in td.manifests.items():
        media_type = json.loads(body).get("mediaType", OCI_IMAGE)
        params = [("tag", t) for t, d in td.tags.items() if d == dgst and dgst in td.tag_param]
        response = http.put(
            f"/v2/{repo}/manifests/{dgst}",
            params=params,
            content=body,
            headers={"Content-Type": media_type},
        )
        if dgst in td.bad_digest:
            assert response.status_code == 400
            continue
        assert response.status_code == 201, response.text
        assert response.headers["docker-content-digest"] == dgst
        subject = json.loads(body).get("subject")
        if subject:
            assert response.headers["oci-subject"] == subject["digest"]
        if params:
            tags = [t.strip() for t in response.headers["oci-tag"].split(",")]
            assert sorted(tags) == sorted(t for _, t in params)
        pulled = http.get(response.headers["location"], headers=ACCEPT)
        assert pulled.status_code == 200
        assert pulled.content == body
        assert pulled.headers["content-type"] == media_type
    for tag, dgst in td.tags.items():
        if dgst in td.tag_param:
            continue
        body = td.manifests[dgst]
        media_type = json.loads(body).get("mediaType", OCI_IMAGE)
        response = http.put(
            f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": media_type}
        )
        assert response.status_code == 201


def list_data(http: httpx.Client, repo: str, td: DataSet) -> None:
    response = http.get(f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    tags = response.json()["tags"]
    assert set(td.tags) <= set(tags)
    if len(tags) >= 2:
        ordered = sorted(tags)
        last = ordered[len(ordered) // 2 - 1]
        partial = http.get(f"/v2/{repo}/tags/list", params={"last": last}).json()["tags"]
        assert not set(ordered[: len(ordered) // 2]) & set(partial)
        assert set(ordered[len(ordered) // 2 :]) <= set(partial)


def head_and_pull_data(http: httpx.Client, repo: str, td: DataSet) -> None:
    pullable = {d: b for d, b in td.manifests.items() if d not in td.bad_digest}
    refs = [(tag, dgst) for tag, dgst in td.tags.items()] + [(d, d) for d in pullable]
    for ref, dgst in refs:
        body = td.manifests[dgst]
        media_type = json.loads(body).get("mediaType", OCI_IMAGE)
        head = http.head(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-type"] == media_type
        assert head.headers["content-length"] == str(len(body))
        assert head.headers["docker-content-digest"] == dgst
        get = http.get(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT)
        assert (get.status_code, get.content) == (200, body)
        assert get.headers["content-type"] == media_type
        assert get.headers["docker-content-digest"] == dgst
    for dgst, body in td.blobs.items():
        head_blob(http, repo, dgst, body)
        get_blob(http, repo, dgst, body)


def referrers_data(http: httpx.Client, repo: str, td: DataSet) -> None:
    for subject, goal in td.referrers.items():
        listed = http.get(f"/v2/{repo}/referrers/{subject}")
        assert listed.status_code == 200
        assert listed.headers["content-type"] == OCI_INDEX
        index = listed.json()
        assert (index["mediaType"], index["schemaVersion"]) == (OCI_INDEX, 2)
        for entry in goal:
            assert any(_matches(got, entry) for got in index["manifests"]), entry
        for artifact_type in {entry.get("artifactType") for entry in goal}:
            if artifact_type is None:
                continue
            filtered = http.get(
                f"/v2/{repo}/referrers/{subject}", params={"artifactType": artifact_type}
            )
            assert "artifactType" in filtered.headers["oci-filters-applied"]
            got = filtered.json()["manifests"]
            assert all(e.get("artifactType") == artifact_type for e in got)
            for entry in goal:
                if entry.get("artifactType") == artifact_type:
                    assert any(_matches(g, entry) for g in got)


def _matches(got: dict[str, Any], goal: dict[str, Any]) -> bool:
    same = all(got.get(k) == goal.get(k) for k in ("digest", "mediaType", "size", "artifactType"))
    annotations = got.get("annotations") or {}
    return same and all(annotations.get(k) == v for k, v in (goal.get("annotations") or {}).items())


def delete_data(http: httpx.Client, repo: str, td: DataSet) -> None:
    for tag in td.tags:
        response = http.delete(f"/v2/{repo}/manifests/{tag}")
        assert response.status_code == 202
        assert http.head(f"/v2/{repo}/manifests/{tag}", headers=ACCEPT).status_code == 404
    for dgst in reversed(list(td.manifests)):
        response = http.delete(f"/v2/{repo}/manifests/{dgst}")
        assert response.status_code in (202, 404)
        assert http.head(f"/v2/{repo}/manifests/{dgst}", headers=ACCEPT).status_code == 404
    for dgst in td.blobs:
        delete_blob(http, repo, dgst)


@pytest.mark.parametrize("name", DATA_SETS)
def test_data_set(http: httpx.Client, repos: tuple[str, str], name: str) -> None:
    repo1, _ = repos
    td = generate(name)
    push_data(http, repo1, td)
    list_data(http, repo1, td)
    head_and_pull_data(http, repo1, td)
    referrers_data(http, repo1, td)
    delete_data(http, repo1, td)


def test_missing_manifests(http: httpx.Client, repos: tuple[str, str]) -> None:
    repo1, _ = repos
    by_digest = http.get(f"/v2/{repo1}/manifests/{digest(os.urandom(1024))}", headers=ACCEPT)
    assert by_digest.status_code == 404
    tag = f"missing-{secrets.token_hex(10)}"
    assert http.get(f"/v2/{repo1}/manifests/{tag}", headers=ACCEPT).status_code == 404


def test_invalid_digest_format(http: httpx.Client, repos: tuple[str, str]) -> None:
    repo1, _ = repos
    td = DataSet()
    dgst = td.full_manifest(layer_count=1)
    rotation = Rotation()
    for blob_digest, body in td.blobs.items():
        rotation.push(http, repo1, blob_digest, body)
    put = http.put(
        f"/v2/{repo1}/manifests/sha256:baddigeststring",
        content=td.manifests[dgst],
        headers={"Content-Type": OCI_IMAGE},
    )
    assert put.status_code == 400
    get = http.get(f"/v2/{repo1}/manifests/sha256:baddigeststring", headers=ACCEPT)
    assert get.status_code in (400, 404)
    delete_data(http, repo1, td)
