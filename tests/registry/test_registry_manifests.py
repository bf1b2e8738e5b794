"""Manifests over raw HTTP: push, pull by tag and digest, negotiation, validation, delete."""

from __future__ import annotations

import base64
import json
import os

import httpx
import pytest
from oci import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    artifact,
    descriptor,
    digest,
    encode,
    errors,
    image,
    push_blob,
    push_manifest,
)

ACCEPT_BOTH = [("Accept", OCI_INDEX), ("Accept", OCI_MANIFEST)]


def test_push_and_pull_by_tag_and_digest(http: httpx.Client, repo: str) -> None:
    dgst, body = image(http, repo, "v1")
    for ref in ("v1", dgst):
        response = http.get(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT_BOTH)
        assert response.status_code == 200
        assert response.content == body
        assert response.headers["content-type"] == OCI_MANIFEST
        assert response.headers["docker-content-digest"] == dgst
        assert response.headers["content-length"] == str(len(body))
        head = http.head(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT_BOTH)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(body))
        assert head.headers["docker-content-digest"] == dgst


def test_put_answers_201_with_location_and_digest(http: httpx.Client, repo: str) -> None:
    config = push_blob(http, repo, b"{}")
    assert config
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example",
        "config": descriptor(OCI_EMPTY, b"{}"),
        "layers": [],
    }
    response = push_manifest(http, repo, "t", manifest)
    body = encode(manifest)
    assert response.status_code == 201
    assert response.headers["location"] == f"/v2/{repo}/manifests/{digest(body)}"
    assert response.headers["docker-content-digest"] == digest(body)
    assert http.get(response.headers["location"]).content == body


def test_missing_blobs_are_manifest_blob_unknown(http: httpx.Client, repo: str) -> None:
    config = encode({"os": "linux"})
    layer = os.urandom(50)
    push_blob(http, repo, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer)],
    }
    response = push_manifest(http, repo, "t", manifest)
    assert response.status_code == 400
    assert errors(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert response.json()["errors"][0]["detail"] == {"digest": digest(layer)}
    assert http.get(f"/v2/{repo}/manifests/t").status_code == 404


def test_blob_of_another_repository_does_not_count(http: httpx.Client, repo: str) -> None:
    config = encode({"os": "linux"})
    push_blob(http, f"{repo}-other", config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [],
    }
    assert errors(push_manifest(http, repo, "t", manifest)) == ["MANIFEST_BLOB_UNKNOWN"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (b'{"schemaVersion": 1}', OCI_MANIFEST),
        (encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}), OCI_MANIFEST),
        (encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}), OCI_MANIFEST),
        (encode({"schemaVersion": 2, "mediaType": "text/plain", "layers": []}), None),
        (
            encode(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": descriptor(OCI_EMPTY, b"{}"),
                    "layers": [],
                }
            ),
            OCI_MANIFEST,
        ),
        (
            encode(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": "sha256:abc", "size": 1},
                    "layers": [],
                }
            ),
            OCI_MANIFEST,
        ),
    ],
    ids=[
        "not-json",
        "array",
        "schema1",
        "no-config",
        "type-mismatch",
        "unknown-type",
        "empty-config-without-artifact-type",
        "bad-descriptor-digest",
    ],
)
def test_invalid_manifests_are_manifest_invalid(
    http: httpx.Client, repo: str, body: bytes, content_type: str | None
) -> None:
    push_blob(http, repo, b"{}")
    response = push_manifest(http, repo, "t", body, content_type)
    assert response.status_code == 400
    assert errors(response) == ["MANIFEST_INVALID"]


def test_digest_reference_must_match_the_body(http: httpx.Client, repo: str) -> None:
    _, body = image(http, repo, None)
    wrong = digest(body + b"  ")
    response = http.put(
        f"/v2/{repo}/manifests/{wrong}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 400
    assert errors(response) == ["DIGEST_INVALID"]
    bad = http.put(
        f"/v2/{repo}/manifests/sha256:baddigeststring",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert (bad.status_code, errors(bad)) == (400, ["DIGEST_INVALID"])
    get = http.get(f"/v2/{repo}/manifests/sha256:baddigeststring")
    assert get.status_code in (400, 404)


def test_manifests_up_to_4_mib_are_accepted_and_larger_are_413(
    http: httpx.Client, repo: str
) -> None:
    annotations = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}
    dgst, body = image(http, repo, "large", annotations=annotations)
    assert len(body) > 3_900_000
    assert http.get(f"/v2/{repo}/manifests/large").content == body
    too_big = {f"k{i}": "A" * 10000 for i in range(430)}
    response = push_manifest(
        http,
        repo,
        "huge",
        {**json.loads(body), "annotations": too_big},
    )
    assert response.status_code == 413
    assert errors(response) == ["MANIFEST_INVALID"]
    assert dgst


def test_sha512_manifest_by_digest(http: httpx.Client, repo: str) -> None:
    dgst, body = image(http, repo, None, algorithm="sha512")
    assert dgst.startswith("sha512:")
    response = http.get(f"/v2/{repo}/manifests/{dgst}", headers=ACCEPT_BOTH)
    assert (response.status_code, response.content) == (200, body)
    assert response.headers["docker-content-digest"] == dgst


def test_index_and_nested_index(http: httpx.Client, repo: str) -> None:
    first, body1 = image(http, repo, None)
    second, body2 = image(http, repo, None)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {**descriptor(OCI_MANIFEST, body1), "platform": {"os": "linux", "architecture": a}}
            for a in ("amd64",)
        ]
        + [{**descriptor(OCI_MANIFEST, body2), "platform": {"os": "linux", "architecture": "x"}}],
    }
    response = push_manifest(http, repo, "index", index)
    assert response.status_code == 201
    nested = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_INDEX, encode(index))],
    }
    assert push_manifest(http, repo, "index-of-index", nested).status_code == 201
    got = http.get(f"/v2/{repo}/manifests/index-of-index", headers=ACCEPT_BOTH)
    assert got.headers["content-type"] == OCI_INDEX
    empty = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert push_manifest(http, repo, "empty", empty).status_code == 201
    assert first and second


def test_index_with_a_missing_child_is_refused(http: httpx.Client, repo: str) -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, b"nowhere")],
    }
    response = push_manifest(http, repo, "x", index)
    assert errors(response) == ["MANIFEST_BLOB_UNKNOWN"]


def test_docker_types_and_content_negotiation(http: httpx.Client, repo: str) -> None:
    config = encode({"os": "linux"})
    push_blob(http, repo, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config),
        "layers": [],
    }
    assert push_manifest(http, repo, "docker", manifest).status_code == 201
    docker_list = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [descriptor(DOCKER_MANIFEST, encode(manifest))],
    }
    assert push_manifest(http, repo, "list", docker_list).status_code == 201
    url = f"/v2/{repo}/manifests/docker"
    assert http.get(url).headers["content-type"] == DOCKER_MANIFEST
    both = f"{OCI_MANIFEST}, {DOCKER_MANIFEST};q=0.9"
    assert http.get(url, headers={"Accept": both}).status_code == 200
    assert http.get(url, headers={"Accept": "*/*"}).status_code == 200
    refused = http.get(url, headers=[("Accept", OCI_MANIFEST), ("Accept", OCI_INDEX)])
    assert (refused.status_code, errors(refused)) == (404, ["MANIFEST_UNKNOWN"])
    by_digest = http.get(f"/v2/{repo}/manifests/{digest(encode(manifest))}", headers=ACCEPT_BOTH)
    assert by_digest.status_code == 200
    lst = http.get(f"/v2/{repo}/manifests/list", headers={"Accept": DOCKER_LIST})
    assert lst.headers["content-type"] == DOCKER_LIST


def test_data_field_must_match(http: httpx.Client, repo: str) -> None:
    config = encode({"os": "linux"})
    push_blob(http, repo, config)
    good = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config, data=base64.b64encode(config).decode()),
        "layers": [],
    }
    assert push_manifest(http, repo, "good", good).status_code == 201
    bad = {**good, "config": {**good["config"], "data": base64.b64encode(b"other").decode()}}
    assert errors(push_manifest(http, repo, "bad", bad)) == ["MANIFEST_INVALID"]


def test_non_distributable_layers_may_be_absent(http: httpx.Client, repo: str) -> None:
    config = encode({"os": "linux"})
    push_blob(http, repo, config)
    foreign = os.urandom(256)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [
            descriptor(
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                foreign,
                urls=[f"https://store.example.com/blobs/sha256/{digest(foreign)[7:]}"],
            )
        ],
    }
    assert push_manifest(http, repo, "nd", manifest).status_code == 201


def test_unknown_fields_are_kept_byte_for_byte(http: httpx.Client, repo: str) -> None:
    config = encode({"os": "linux"})
    push_blob(http, repo, config)
    body = (
        b'{"schemaVersion":2,  "mediaType":"' + OCI_MANIFEST.encode() + b'",'
        b'"config":' + encode(descriptor(OCI_CONFIG, config)) + b',"layers":[],'
        b'"x-custom":{"deep":[1,2,3]}}'
    )
    response = push_manifest(http, repo, "custom", body, OCI_MANIFEST)
    assert response.status_code == 201
    assert http.get(f"/v2/{repo}/manifests/custom").content == body


def test_tag_query_parameters_tag_a_digest_push(http: httpx.Client, repo: str) -> None:
    _, body = image(http, repo, None)
    response = http.put(
        f"/v2/{repo}/manifests/{digest(body)}",
        params=[("tag", "a"), ("tag", "b")],
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201
    assert response.headers["oci-tag"] == "a, b"
    assert http.get(f"/v2/{repo}/manifests/b").content == body
    bad = http.put(
        f"/v2/{repo}/manifests/{digest(body)}",
        params={"tag": "-bad"},
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert errors(bad) == ["TAG_INVALID"]


def test_invalid_tag_reference_is_400(http: httpx.Client, repo: str) -> None:
    response = http.put(f"/v2/{repo}/manifests/-x", content=b"{}")
    assert (response.status_code, errors(response)) == (400, ["TAG_INVALID"])


def test_missing_manifest_is_404(http: httpx.Client, repo: str) -> None:
    for ref in ("nope", digest(os.urandom(4))):
        response = http.get(f"/v2/{repo}/manifests/{ref}")
        assert (response.status_code, errors(response)) == (404, ["MANIFEST_UNKNOWN"])
        assert http.head(f"/v2/{repo}/manifests/{ref}").status_code == 404


def test_delete_tag_then_manifest(http: httpx.Client, repo: str) -> None:
    dgst, _ = image(http, repo, "one")
    response = push_manifest(
        http, repo, "two", http.get(f"/v2/{repo}/manifests/one").content, OCI_MANIFEST
    )
    assert response.status_code == 201
    assert http.delete(f"/v2/{repo}/manifests/one").status_code == 202
    assert http.head(f"/v2/{repo}/manifests/one").status_code == 404
    assert http.head(f"/v2/{repo}/manifests/{dgst}").status_code == 200
    assert http.delete(f"/v2/{repo}/manifests/{dgst}").status_code == 202
    assert http.head(f"/v2/{repo}/manifests/{dgst}").status_code == 404
    assert http.head(f"/v2/{repo}/manifests/two").status_code == 404
    again = http.delete(f"/v2/{repo}/manifests/{dgst}")
    assert (again.status_code, errors(again)) == (404, ["MANIFEST_UNKNOWN"])


def test_subject_sets_oci_subject_even_when_missing(http: httpx.Client, repo: str) -> None:
    missing = {"mediaType": OCI_MANIFEST, "digest": digest(b"missing content"), "size": 123}
    dgst, _, response = artifact(http, repo, "sig", "application/vnd.example.sig", subject=missing)
    assert response.status_code == 201
    assert response.headers["oci-subject"] == missing["digest"]
    assert dgst
