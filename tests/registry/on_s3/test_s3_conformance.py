"""The whole OCI conformance port (tests/registry/test_registry_conformance.py) again, against
the registry on S3: the same functions, with this folder's ``registry`` fixture."""

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
