"""The runtime tests' fixture: one real ``mdl serve`` per test module (see ``serving.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import Served, standard_models


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Served]:
    """One server per test module, with the standard models."""
    server = Served(tmp_path_factory.mktemp("serve-home"))
    standard_models(server, models_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
