"""mdl build --provenance / --sbom / --sign: attestations as referrers, deterministic and signed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from mdl.spec import attestations, sigstore
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import SignatureError
from mdl.spec.manifest import Manifest
from mdl.store.signatures import Signed, signatures, verify_signed
from mdl.store.store import Store

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture
def source(models_dir: Path, tmp_path: Path) -> Path:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        f'FROM {models_dir / "tiny.gguf"}\nSYSTEM "Be brief."\nLICENSE "MIT License"\n'
    )
    return modelfile


def referrer(store: Store, subject: str, artifact_type: str) -> tuple[Descriptor, bytes]:
    [found] = [r for r in store.referrers(Digest.parse(subject))
               if r.extra.get("artifactType") == artifact_type]  # fmt: skip
    doc = store.read_manifest(found)
    assert isinstance(doc, Manifest)
    assert doc.subject is not None and str(doc.subject.digest) == subject
    return found, store.read_blob(doc.layers[0])


def test_attestations_are_referrers_that_reproduce(
    mdl: MdlRunner, mdl_home: Path, source: Path, tmp_path: Path
) -> None:
    mdl("key", "generate", "--out", str(tmp_path / "ci"))
    argv = ["build", "-f", str(source), "-t", "team/tiny:1", "--provenance", "--sbom",
            "--sign", str(tmp_path / "ci.key"), "--json"]  # fmt: skip
    first = mdl(*argv, env=EPOCH).json()
    second = mdl(*argv, env=EPOCH).json()
    assert first["attached"] == second["attached"]
    kinds = [a["kind"] for a in first["attached"]]
    assert kinds == ["provenance", "signature of provenance", "sbom", "signature of sbom",
                     "signature"]  # fmt: skip
    elsewhere = {**EPOCH, "MDL_HOME": str(tmp_path / "fresh")}
    assert mdl(*argv, env=elsewhere).json()["attached"] == first["attached"]
    mdl("verify", "team/tiny:1", "--key", str(tmp_path / "ci.pub"))


def test_the_sbom_is_valid_cyclonedx_and_describes_the_model(
    mdl: MdlRunner, mdl_home: Path, source: Path
) -> None:
    built = mdl("build", "-f", str(source), "-t", "team/tiny:1", "--sbom", "--json").json()
    _, data = referrer(
        Store(mdl_home / "store"), built["digest"], attestations.CYCLONEDX_MEDIA_TYPE
    )
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode())
    assert error is None, error
    bom = json.loads(data)
    model = bom["metadata"]["component"]
    assert model["hashes"] == [{"alg": "SHA-256", "content": built["digest"][7:]}]
    assert model["modelCard"]["modelParameters"]["modelArchitecture"] == "llama"
    files = {c["name"]: c["hashes"][0]["content"] for c in bom["components"]}
    assert files == {layer["filepath"]: layer["digest"][7:] for layer in built["layers"]}
    assert model["licenses"] == [{"license": {"name": "MIT License"}}]


def test_the_provenance_names_the_modelfile_the_sources_and_the_base(
    mdl: MdlRunner, mdl_home: Path, source: Path, models_dir: Path, tmp_path: Path
) -> None:
    base = mdl("build", "-f", str(source), "-t", "team/tiny:1", "--provenance", "--json",
               env=EPOCH).json()  # fmt: skip
    store = Store(mdl_home / "store")
    _, data = referrer(store, base["digest"], attestations.IN_TOTO_MEDIA_TYPE)
    statement = json.loads(data)
    assert statement["predicateType"] == attestations.SLSA_PROVENANCE
    assert statement["subject"] == [{"name": "team/tiny", "digest": {"sha256": base["digest"][7:]}}]
    definition = statement["predicate"]["buildDefinition"]
    assert "SYSTEM" in definition["externalParameters"]["modelfile"]["text"]
    weights = next(layer["digest"] for layer in base["layers"] if layer["filepath"] == "model.gguf")
    assert definition["resolvedDependencies"] == [
        {"name": f"FROM {models_dir / 'tiny.gguf'}", "digest": {"sha256": weights[7:]}}
    ]
    assert definition["internalParameters"] == {"SOURCE_DATE_EPOCH": 1700000000}
    derived = tmp_path / "Derived"
    derived.write_text("FROM team/tiny:1\nPARAMETER temperature 0.1\n")
    child = mdl("build", "-f", str(derived), "-t", "team/child:1", "--provenance", "--json").json()
    _, data = referrer(store, child["digest"], attestations.IN_TOTO_MEDIA_TYPE)
    dependencies = json.loads(data)["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert dependencies == [{"name": "FROM", "digest": {"sha256": base["digest"][7:]}}]


def test_a_signed_attestation_verifies_only_with_its_key(
    mdl: MdlRunner, mdl_home: Path, source: Path, tmp_path: Path
) -> None:
    mdl("key", "generate", "--out", str(tmp_path / "ci"))
    mdl("key", "generate", "--out", str(tmp_path / "other"))
    built = mdl("build", "-f", str(source), "-t", "team/tiny:1", "--sbom",
                "--sign", str(tmp_path / "ci.key"), "--json").json()  # fmt: skip
    store = Store(mdl_home / "store")
    sbom, _ = referrer(store, built["digest"], attestations.CYCLONEDX_MEDIA_TYPE)
    doc = store.read_manifest(sbom)
    assert isinstance(doc, Manifest)
    signed = Signed(sbom, doc, [(d.digest, b) for d, b in signatures(store, sbom.digest)])
    key = sigstore.load_public_key((tmp_path / "ci.pub").read_bytes())
    [verified] = verify_signed(signed, key)
    assert verified.signature is not None
    other = sigstore.load_public_key((tmp_path / "other.pub").read_bytes())
    with pytest.raises(SignatureError, match="no signature verifies with this key"):
        verify_signed(signed, other)


def test_a_build_without_the_flags_attaches_nothing(
    mdl: MdlRunner, mdl_home: Path, source: Path
) -> None:
    built = mdl("build", "-f", str(source), "-t", "team/tiny:1", "--json").json()
    assert built["attached"] == []
    assert Store(mdl_home / "store").referrers(Digest.parse(built["digest"])) == []


def test_a_missing_signing_key_fails_before_building(
    mdl: MdlRunner, mdl_home: Path, source: Path, tmp_path: Path
) -> None:
    run = mdl(
        "build", "-f", str(source), "-t", "x:1", "--sign", str(tmp_path / "none.key"), ok=False
    )
    assert run.code == 2
    assert "none.key" in run.err
    assert mdl("list", "--json").json()["models"] == []
