from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdl.spec.digest import Digest
from mdl.spec.errors import InvalidReference
from mdl.spec.reference import Reference

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("tiny", None, "tiny", "latest", None),
        ("tiny:1.0", None, "tiny", "1.0", None),
        ("demo/tiny:q4", None, "demo/tiny", "q4", None),
        ("localhost/tiny", "localhost", "tiny", "latest", None),
        ("localhost:5000/demo/tiny:1.0", "localhost:5000", "demo/tiny", "1.0", None),
        ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c", "latest", None),
        ("ghcr.io/org/model:v1", "ghcr.io", "org/model", "v1", None),
        ("[::1]:5000/tiny", "[::1]:5000", "tiny", "latest", None),
        (f"tiny@sha256:{HEX}", None, "tiny", None, f"sha256:{HEX}"),
        (f"tiny:1@sha256:{HEX}", None, "tiny", "1", f"sha256:{HEX}"),
        (f"sha256:{HEX}", None, "", None, f"sha256:{HEX}"),
        ("a_b__c--d/e.f", None, "a_b__c--d/e.f", "latest", None),
    ],
)
def test_parse_valid_references(
    text: str, registry: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert (str(ref.digest) if ref.digest else None) == digest


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        (" tiny", "spaces"),
        ("Tiny", "bad repository"),
        ("tiny:", "bad tag"),
        ("tiny:.bad", "bad tag"),
        ("tiny:" + "x" * 129, "bad tag"),
        ("a//b", "bad repository"),
        ("a/../b", "bad repository"),
        ("/abs/path", "bad repository"),
        ("tiny@sha256:abc", "invalid digest"),
        (f"tiny@md5:{HEX}", "invalid digest"),
        ("-host.io/a", "bad registry host"),
        ("a" * 256, "longer than 255"),
        ("tiny_", "bad repository"),
    ],
)
def test_parse_invalid_references_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(InvalidReference, match=fragment):
        Reference.parse(text)


def test_local_reference_resolves_against_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MDL_DEFAULT_REGISTRY", raising=False)
    with pytest.raises(InvalidReference, match="MDL_DEFAULT_REGISTRY"):
        Reference.parse("tiny").with_registry()
    monkeypatch.setenv("MDL_DEFAULT_REGISTRY", "localhost:5000")
    assert str(Reference.parse("demo/tiny:1").with_registry()) == "localhost:5000/demo/tiny:1"
    assert Reference.parse("ghcr.io/a/b").with_registry().registry == "ghcr.io"


def test_digest_round_trips_and_rejects_uppercase() -> None:
    digest = Digest.of(b"hello")
    assert Digest.parse(str(digest)) == digest
    with pytest.raises(InvalidReference):
        Digest.parse(str(digest).upper())


_component = st.from_regex(r"[a-z0-9]{1,5}(?:[._-][a-z0-9]{1,5}){0,2}", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,20}", fullmatch=True)


@given(
    registry=st.sampled_from([None, "localhost:5000", "registry.example.com", "127.0.0.1:80"]),
    path=st.lists(_component, min_size=1, max_size=3),
    tag=_tag,
)
def test_str_parse_round_trip(registry: str | None, path: list[str], tag: str) -> None:
    if registry is None and "." in path[0] and len(path) > 1:
        path[0] = path[0].replace(".", "_")  # else docker's rule reads it as a registry host
    text = "/".join(([registry] if registry else []) + path) + f":{tag}"
    ref = Reference.parse(text)
    assert str(ref) == text
    assert Reference.parse(str(ref)) == ref


@given(st.text(max_size=80))
def test_parse_never_raises_anything_but_invalid_reference(text: str) -> None:
    with contextlib.suppress(InvalidReference):
        Reference.parse(text)


@pytest.mark.parametrize("text", ["tiny\n", "tiny:v1\n", "demo/tiny\n:v1", f"tiny@sha256:{HEX}\n"])
def test_a_trailing_newline_is_no_part_of_a_reference(text: str) -> None:
    with pytest.raises(InvalidReference):
        Reference.parse(text)


def test_one_length_rule_for_names_with_and_without_a_host() -> None:
    from mdl.spec.reference import is_repository, is_tag

    assert is_repository("a" * 255) and not is_repository("a" * 256)
    assert Reference.parse("a" * 255).repository == "a" * 255
    assert Reference.parse("h.io/" + "a" * 250).repository == "a" * 250
    with pytest.raises(InvalidReference, match="longer than 255"):
        Reference.parse("h.io/" + "a" * 251)
    assert not is_repository("a\n") and not is_tag("v1\n")
