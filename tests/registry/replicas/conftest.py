"""Replicas of ``mdl registry serve`` on one RGW bucket behind HAProxy (round-robin, health
check on ``GET /v2/``): here ``registry`` is the load balancer, so the conformance port and the
raw ``http`` client go through it; ``replica_set`` gives the replicas and HAProxy's view.

The conformance port runs here as a subset (every blob API once with sha256 and three data
sets); ``MDL_S3_CONFORMANCE=all`` runs all of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from haproxy import Balanced, replicas
from rgw import Rgw
from subsets import deselect_outside

REPLICAS = 3


@pytest.fixture(scope="session")
def replica_set(rgw: Rgw, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balanced]:
    with replicas(rgw, tmp_path_factory.mktemp("replicas"), REPLICAS) as balanced:
        yield balanced


@pytest.fixture(scope="session")
def registry(replica_set: Balanced) -> Balanced:
    return replica_set


SUBSET_DATA_SETS = {"image", "index", "artifacts-with-subject"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_outside(
        config, items, Path(__file__).parent / "test_replicas_conformance.py", SUBSET_DATA_SETS
    )
