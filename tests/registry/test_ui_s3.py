"""The registry browser over S3 storage (Ceph's RADOS Gateway): the index and the cards read
through the storage driver, so the catalog, the search and a model card work as on disk."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from oci import descriptor, encode, push_blob, push_manifest
from rgw import Rgw

MODEL_CONFIG = "application/vnd.cncf.model.config.v1+json"
CONFIG: dict[str, Any] = {
    "descriptor": {"name": "tiny"},
    "config": {"format": "gguf", "architecture": "llama", "paramSize": "7B",
               "quantization": "Q4_K_M", "contextLength": 4096},
    "modelfs": {"type": "layers", "diffIds": []},
}  # fmt: skip


def test_the_browser_reads_an_s3_registry(
    rgw: Rgw, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("ui-s3")
    with rgw.serve(rgw.bucket(), root) as server, httpx.Client(base_url=server.url) as http:
        config = encode(CONFIG)
        system = b"Answer in French."
        for name in ("s3/alpha", "s3/beta"):
            push_blob(http, name, config)
            push_blob(http, name, system)
            manifest = {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": "application/vnd.cncf.model.manifest.v1+json",
                "config": descriptor(MODEL_CONFIG, config),
                "layers": [
                    descriptor(
                        "application/vnd.cncf.model.weight.config.v1.raw",
                        system,
                        annotations={"org.cncf.model.filepath": "system.txt"},
                    )
                ],
            }
            assert push_manifest(http, name, "v1", manifest).status_code == 201
        rows = http.get("/ui/api/catalog").json()["repositories"]
        assert [r["name"] for r in rows] == ["s3/alpha", "s3/beta"]
        assert rows[0]["summary"]["quantization"] == "Q4_K_M"
        assert rows[0]["summary"]["size"] == len(config) + len(system)
        found = http.get("/ui/api/catalog", params={"q": "beta q4_k_m"}).json()
        assert [r["name"] for r in found["repositories"]] == ["s3/beta"]
        card = http.get("/ui/api/manifest", params={"name": "s3/alpha", "ref": "v1"}).json()
        assert card["card"]["system"] == "Answer in French."
        assert card["card"]["facts"]["context_length"] == 4096
        assert card["card"]["facts"]["architecture"] == CONFIG["config"]["architecture"]
