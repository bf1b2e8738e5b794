"""The registry on S3 (Ceph's RADOS Gateway): here ``registry`` is ``mdl registry serve
--storage s3://BUCKET --s3-redirect false``, so the suites that read blob headers run as they do
on the filesystem; ``redirecting`` is a second process on the same bucket, with redirects.

The conformance port runs on S3 as a subset (every case once, sha256; the data sets that
cover images, indexes, nesting, referrers and tag parameters), 30 cases;
``MDL_S3_CONFORMANCE=all`` runs all 64.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rgw import Rgw
from servers import RunningServer
from subsets import deselect_outside


@pytest.fixture(scope="session")
def s3_bucket(rgw: Rgw) -> str:
    return rgw.bucket()


@pytest.fixture(scope="session")
def registry(
    rgw: Rgw, s3_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("s3-streaming")
    with rgw.serve(s3_bucket, root, "--s3-redirect", "false") as server:
        yield server


@pytest.fixture(scope="session")
def redirecting(
    rgw: Rgw, s3_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with rgw.serve(s3_bucket, tmp_path_factory.mktemp("s3-redirecting")) as server:
        yield server


SUBSET_DATA_SETS = {
    "image",
    "index",
    "nested-index",
    "artifacts-with-subject",
    "sha512",
    "tag-param-sha512",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_outside(
        config, items, Path(__file__).parent / "test_s3_conformance.py", SUBSET_DATA_SETS
    )
