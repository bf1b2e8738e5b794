"""Discovery over raw HTTP: tags list and catalog pagination, the referrers API."""

from __future__ import annotations

import httpx
from oci import OCI_INDEX, OCI_MANIFEST, artifact, digest, errors, image, push_manifest

TAGS = ["b", "a", "10", "C", "1", "z-last", "latest"]


def push_tags(http: httpx.Client, repo: str) -> list[str]:
    _, body = image(http, repo, None)
    for tag in TAGS:
        assert push_manifest(http, repo, tag, body, OCI_MANIFEST).status_code == 201
    return sorted(TAGS)


def test_tags_are_listed_in_lexical_order(http: httpx.Client, repo: str) -> None:
    expected = push_tags(http, repo)
    response = http.get(f"/v2/{repo}/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": repo, "tags": expected}
    assert "link" not in response.headers


def test_tags_pagination_with_n_last_and_link(http: httpx.Client, repo: str) -> None:
    expected = push_tags(http, repo)
    seen: list[str] = []
    url: str | None = f"/v2/{repo}/tags/list?n=3"
    pages = 0
    while url:
        response = http.get(url)
        assert response.status_code == 200
        page = response.json()["tags"]
        assert len(page) <= 3
        seen += page
        pages += 1
        link = response.headers.get("link")
        url = link.split(";")[0].strip("<>") if link else None
        if url:
            assert link.endswith('rel="next"')
    assert seen == expected
    assert pages == 3
    after = http.get(f"/v2/{repo}/tags/list", params={"last": expected[2]}).json()["tags"]
    assert after == expected[3:]
    assert http.get(f"/v2/{repo}/tags/list", params={"n": 0}).json()["tags"] == []


def test_bad_n_is_400(http: httpx.Client, repo: str) -> None:
    push_tags(http, repo)
    response = http.get(f"/v2/{repo}/tags/list", params={"n": "-1"})
    assert (response.status_code, errors(response)) == (400, ["PAGINATION_NUMBER_INVALID"])


def test_tags_of_an_unknown_repository_is_404_name_unknown(http: httpx.Client, repo: str) -> None:
    response = http.get(f"/v2/{repo}/tags/list")
    assert (response.status_code, errors(response)) == (404, ["NAME_UNKNOWN"])


def test_catalog_lists_repositories_with_pagination(http: httpx.Client, repo: str) -> None:
    names = [f"{repo}/a", f"{repo}/b", f"{repo}/c/d"]
    for name in names:
        image(http, name, "x", layers=0)
    everything = http.get("/v2/_catalog").json()["repositories"]
    assert everything == sorted(everything)
    assert set(names) <= set(everything)
    start = everything.index(names[0])
    last = everything[start - 1] if start else None
    params = {"n": "2", **({"last": last} if last else {})}
    response = http.get("/v2/_catalog", params=params)
    assert response.json()["repositories"] == names[:2]
    assert (
        response.headers["link"]
        == f'</v2/_catalog?n=2&last={names[1].replace("/", "%2F")}>; rel="next"'
    )


def test_referrers_lists_filters_and_accepts_missing_subjects(
    http: httpx.Client, repo: str
) -> None:
    subject_digest, subject_body = image(http, repo, "image")
    subject = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_body)}
    note = {"org.opencontainers.conformance": "hello conformance test"}
    sig, sig_body, sig_response = artifact(
        http, repo, "sig", "application/vnd.example.v1", subject=subject, annotations=note
    )
    sbom, _, _ = artifact(http, repo, None, "application/vnd.example.v2", subject=subject)
    assert sig_response.headers["oci-subject"] == subject_digest
    response = http.get(f"/v2/{repo}/referrers/{subject_digest}")
    assert response.status_code == 200
    assert response.headers["content-type"] == OCI_INDEX
    index = response.json()
    assert (index["schemaVersion"], index["mediaType"]) == (2, OCI_INDEX)
    entries = {e["digest"]: e for e in index["manifests"]}
    assert set(entries) == {sig, sbom}
    assert entries[sig] == {
        "mediaType": OCI_MANIFEST,
        "digest": sig,
        "size": len(sig_body),
        "artifactType": "application/vnd.example.v1",
        "annotations": note,
    }
    filtered = http.get(
        f"/v2/{repo}/referrers/{subject_digest}",
        params={"artifactType": "application/vnd.example.v2"},
    )
    assert filtered.headers["oci-filters-applied"] == "artifactType"
    assert [e["digest"] for e in filtered.json()["manifests"]] == [sbom]
    assert http.delete(f"/v2/{repo}/manifests/{sbom}").status_code == 202
    after = http.get(f"/v2/{repo}/referrers/{subject_digest}").json()["manifests"]
    assert [e["digest"] for e in after] == [sig]


def test_referrers_of_an_image_manifest_use_its_config_media_type(
    http: httpx.Client, repo: str
) -> None:
    subject_digest, subject_body = image(http, repo, "image")
    subject = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_body)}
    referrer, _ = image(http, repo, None, subject=subject)
    entries = http.get(f"/v2/{repo}/referrers/{subject_digest}").json()["manifests"]
    assert [(e["digest"], e["artifactType"]) for e in entries] == [
        (referrer, "application/vnd.oci.image.config.v1+json")
    ]


def test_referrers_of_nothing_is_an_empty_index(http: httpx.Client, repo: str) -> None:
    response = http.get(f"/v2/{repo}/referrers/{digest(b'never pushed')}")
    assert response.status_code == 200
    assert response.json()["manifests"] == []
    bad = http.get(f"/v2/{repo}/referrers/sha256:nope")
    assert (bad.status_code, errors(bad)) == (400, ["DIGEST_INVALID"])


def test_index_with_subject_is_a_referrer(http: httpx.Client, repo: str) -> None:
    subject_digest, subject_body = image(http, repo, "image")
    child, child_body = image(http, repo, None)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.index",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": len(child_body)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": len(subject_body)},
    }
    response = push_manifest(http, repo, "tagged-artifact", index)
    assert response.headers["oci-subject"] == subject_digest
    entries = http.get(f"/v2/{repo}/referrers/{subject_digest}").json()["manifests"]
    assert [(e["mediaType"], e["artifactType"]) for e in entries] == [
        (OCI_INDEX, "application/vnd.example.index")
    ]
