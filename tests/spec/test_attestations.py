"""The build's attestations: an SLSA provenance statement and a CycloneDX 1.6 ML-BOM."""

from __future__ import annotations

import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from mdl.spec.attestations import BuildFacts, encode, ml_bom, provenance
from mdl.spec.digest import Digest
from mdl.spec.modelpack import ModelConfig

MANIFEST = Digest.of(b"manifest")
BASE = Digest.of(b"base manifest")
FACTS = BuildFacts(
    name="team/tiny",
    version="1.0",
    manifest=MANIFEST,
    config=ModelConfig(architecture="llama", param_size="1.2M", quantization="F32",
                       context_length=512, licenses=("MIT License\n\nPermission is...",)),
    files={"model.gguf": Digest.of(b"weights"), "system.txt": Digest.of(b"Be brief."),
           "adapters/0.gguf": Digest.of(b"lora")},
    modelfile_path="Modelfile",
    modelfile_text="FROM ./tiny.gguf\nSYSTEM Be brief.\n",
    sources={"./tiny.gguf": Digest.of(b"weights")},
    base=BASE,
    adapters=("adapters/0.gguf",),
    parameters={"temperature": 0.2},
    tags=("team/tiny:1.0",),
    source_date_epoch=1700000000,
    builder_version="0.1.0",
)  # fmt: skip


def validate(document: dict[str, object]) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    assert error is None, error


def test_the_ml_bom_is_valid_cyclonedx_1_6() -> None:
    bom = ml_bom(FACTS)
    validate(bom)
    model = bom["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    assert model["modelCard"]["modelParameters"]["modelArchitecture"] == "llama"
    assert {"name": "mdl:quantization", "value": "F32"} in model["properties"]
    assert model["licenses"] == [{"license": {"name": "MIT License"}}]
    assert model["pedigree"]["ancestors"][0]["hashes"][0]["content"] == BASE.hex
    names = {c["name"]: c for c in bom["components"]}
    assert names["adapters/0.gguf"]["type"] == "machine-learning-model"
    assert names["system.txt"]["hashes"] == [
        {"alg": "SHA-256", "content": Digest.of(b"Be brief.").hex}
    ]
    assert bom["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"


def test_a_minimal_model_gives_a_valid_bom_without_times() -> None:
    facts = BuildFacts("tiny", None, MANIFEST, ModelConfig(), {"model.gguf": MANIFEST},
                       "Modelfile", "FROM x\n")  # fmt: skip
    bom = ml_bom(facts)
    validate(bom)
    assert "timestamp" not in bom["metadata"]
    assert "metadata" not in provenance(facts)["predicate"]["runDetails"]


def test_an_invalid_document_is_caught_by_the_validator() -> None:
    bom = ml_bom(FACTS)
    bom["components"][0]["type"] = "weights"
    with pytest.raises(AssertionError):
        validate(bom)


def test_the_provenance_names_every_input() -> None:
    statement = provenance(FACTS)
    assert statement["subject"] == [{"name": "team/tiny", "digest": {"sha256": MANIFEST.hex}}]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["externalParameters"]["modelfile"]["text"] == FACTS.modelfile_text
    assert definition["internalParameters"] == {"SOURCE_DATE_EPOCH": 1700000000}
    base = {"name": "FROM", "digest": {"sha256": BASE.hex}}
    assert base in definition["resolvedDependencies"]
    assert statement["predicate"]["runDetails"]["builder"]["version"] == {"mdl": "0.1.0"}


def test_the_same_facts_give_the_same_bytes() -> None:
    assert encode(ml_bom(FACTS)) == encode(ml_bom(FACTS))
    assert encode(provenance(FACTS)) == encode(provenance(FACTS))
    other = BuildFacts(**{**FACTS.__dict__, "manifest": Digest.of(b"other")})
    assert ml_bom(other)["serialNumber"] != ml_bom(FACTS)["serialNumber"]
