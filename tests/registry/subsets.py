"""The conformance port as a subset, for the places it runs again on slower storage (S3, the
replicas behind HAProxy): every case once with sha256 blobs, and some data sets;
``MDL_S3_CONFORMANCE=all`` keeps every case."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import pytest


def in_subset(item: pytest.Item, data_sets: Collection[str]) -> bool:
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    if params.get("algo", "sha256") != "sha256":
        return False
    return "name" not in params or params["name"] in data_sets


def deselect_outside(
    config: pytest.Config, items: list[pytest.Item], module: Path, data_sets: Collection[str]
) -> None:
    """Drop the cases of ``module`` outside the subset (a ``pytest_collection_modifyitems``)."""
    if os.environ.get("MDL_S3_CONFORMANCE") == "all":
        return
    kept, dropped = [], []
    for item in items:
        (dropped if item.path == module and not in_subset(item, data_sets) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
