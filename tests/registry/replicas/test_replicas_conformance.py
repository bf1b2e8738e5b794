"""The OCI conformance port (tests/registry/test_registry_conformance.py) through HAProxy, over
three replicas on one RGW bucket: each request of a case may reach another replica."""

from test_registry_conformance import (  # noqa: F401
    repos,
    test_bad_digest_uploads_are_400,
    test_blob_apis,
    test_data_set,
    test_empty_tag_list_and_referrers,
    test_invalid_digest_format,
    test_missing_manifests,
    test_ping,
    test_range_requests,
    test_well_known_blobs,
)
