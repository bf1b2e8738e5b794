from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.manifest import Index, InvalidManifest, Manifest, encode, parse

CONFIG = Descriptor.for_bytes(mt.MODEL_CONFIG, b"{}")
LAYER = Descriptor.for_bytes(mt.MODEL_WEIGHT, b"weights", {mt.ANNOTATION_FILEPATH: "model.gguf"})


def test_manifest_and_index_round_trip_byte_for_byte() -> None:
    manifest = Manifest(CONFIG, (LAYER,), artifact_type=mt.MODEL_ARTIFACT, annotations={"a": "b"})
    data = encode(manifest)
    assert parse(data) == manifest and encode(parse(data)) == data
    index = Index((Descriptor.for_bytes(mt.OCI_MANIFEST, data),))
    assert parse(encode(index)) == index


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"schemaVersion": 1}, "schemaVersion must be 2"),
        ({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": []}, "no config"),
        (
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_EMPTY, "digest": str(CONFIG.digest), "size": 2},
                "layers": [],
            },
            "empty config must set artifactType",
        ),
        ({"schemaVersion": 2, "mediaType": "text/plain"}, "unsupported manifest media type"),
        ({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [{}]}, "no mediaType"),
        (
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": "sha256:abc", "size": 1},
                "layers": [],
            },
            "invalid digest",
        ),
    ],
)
def test_invalid_manifests_are_refused_with_the_reason(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidManifest, match=message):
        parse(json.dumps(doc).encode())


def test_declared_media_type_must_match_the_content_type() -> None:
    with pytest.raises(InvalidManifest, match="does not match"):
        parse(encode(Manifest(CONFIG, (LAYER,))), mt.OCI_INDEX)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "schemaVersion",
                    "mediaType",
                    "config",
                    "layers",
                    "manifests",
                    "digest",
                    "size",
                    "annotations",
                    "artifactType",
                    "subject",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


@given(_json)
def test_any_json_parses_or_is_refused_cleanly(doc: Any) -> None:
    with contextlib.suppress(InvalidManifest):
        parse(json.dumps(doc).encode())


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused_cleanly(data: bytes) -> None:
    with contextlib.suppress(InvalidManifest):
        parse(data)
