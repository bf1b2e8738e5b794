"""mdl key generate / sign / verify REF / discover, checked against OpenSSF's model-signing CLI."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import MdlRunner

from mdl.spec import sigstore, statements
from mdl.spec.digest import Digest
from mdl.spec.errors import SignatureError
from mdl.spec.reference import Reference
from mdl.store.models import load_model
from mdl.store.signatures import attach_bundle, bundle_of, enforce, load_policy
from mdl.store.store import Store

MODEL_SIGNING = str(Path(sys.executable).with_name("model_signing"))


def model_signing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODEL_SIGNING, *args], capture_output=True, text=True, timeout=120)


def build_other(mdl: MdlRunner, models_dir: Path, tmp_path: Path, tag: str, system: str) -> None:
    """A second model over the same weights that differs only in its system prompt."""
    (tmp_path / "Other").write_text(f'FROM {models_dir / "tiny.gguf"}\nSYSTEM "{system}"\n')
    mdl("build", "-f", str(tmp_path / "Other"), "-t", tag)


@pytest.fixture
def keys(mdl: MdlRunner, tmp_path: Path) -> tuple[Path, Path]:
    mdl("key", "generate", "--out", str(tmp_path / "alice"))
    return tmp_path / "alice.key", tmp_path / "alice.pub"


@pytest.fixture
def tiny(mdl: MdlRunner, models_dir: Path, tmp_path: Path) -> str:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f'FROM {models_dir / "tiny.gguf"}\nSYSTEM "Be brief."\nLICENSE "MIT"\n')
    mdl("build", "-f", str(modelfile), "-t", "tiny:1")
    return "tiny:1"


def test_key_generate_writes_a_private_key_only_its_owner_reads(keys: tuple[Path, Path]) -> None:
    private, public = keys
    assert private.stat().st_mode & 0o777 == 0o600
    assert b"BEGIN PRIVATE KEY" in private.read_bytes()
    assert sigstore.load_public_key(public.read_bytes()).curve.name == "secp256r1"


def test_key_generate_refuses_to_overwrite(mdl: MdlRunner, keys: tuple[Path, Path]) -> None:
    run = mdl("key", "generate", "--out", str(keys[0].with_suffix("")), ok=False)
    assert run.code == 1
    assert "exists" in run.err


def test_mdl_signature_verifies_with_the_model_signing_cli_and_breaks_on_any_change(
    mdl: MdlRunner, tiny: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    signature = tmp_path / "model.sig"
    mdl("sign", tiny, "--key", str(private), "--output", str(signature))
    exported = tmp_path / "exported"
    mdl("export", tiny, str(exported))
    files = sorted(p.name for p in exported.iterdir())
    assert {"model.gguf", "system.txt", "LICENSE"} <= set(files)
    verify = ["verify", "key", str(exported), "--signature", str(signature)]
    ok = model_signing(*verify, "--public_key", str(public))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for name in files:
        changed = tmp_path / f"changed-{name}"
        shutil.copytree(exported, changed)
        with open(changed / name, "ab") as f:
            f.write(b"\0")
        refused = model_signing(*verify[:2], str(changed), *verify[3:], "--public_key", str(public))
        assert refused.returncode != 0, f"a change to {name} went unnoticed"
    other = tmp_path / "other"
    mdl("key", "generate", "--out", str(other))
    wrong = model_signing(*verify, "--public_key", f"{other}.pub")
    assert wrong.returncode != 0


def test_a_directory_signed_by_model_signing_verifies_with_mdl(
    mdl: MdlRunner, models_dir: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    source = tmp_path / "weights"
    source.mkdir()
    shutil.copyfile(models_dir / "tiny.gguf", source / "tiny.gguf")
    signature = tmp_path / "weights.sig"
    signed = model_signing(
        "sign", "key", str(source), "--private_key", str(private), "--signature", str(signature)
    )
    assert signed.returncode == 0, signed.stdout + signed.stderr
    (tmp_path / "Modelfile").write_text("FROM ./weights\n")
    mdl("build", "-f", str(tmp_path / "Modelfile"), "-t", "signed-elsewhere:1")
    run = mdl(
        "verify",
        "signed-elsewhere:1",
        "--key",
        str(public),
        "--signature",
        str(signature),
        "--json",
    )
    [verified] = run.json()["verified"]
    assert verified["predicate_type"] == statements.MODEL_SIGNING_PREDICATE
    assert "model.gguf" in verified["files"]
    (source / "tiny.gguf").write_bytes((source / "tiny.gguf").read_bytes() + b"\0")
    (tmp_path / "Modelfile").write_text("FROM ./weights\n")
    mdl("build", "-f", str(tmp_path / "Modelfile"), "-t", "changed:1")
    refused = mdl(
        "verify", "changed:1", "--key", str(public), "--signature", str(signature), ok=False
    )
    assert refused.code == 1
    assert "model.gguf" in refused.err


@pytest.mark.parametrize("fmt", ["model-signing", "cosign"])
def test_sign_then_verify_through_the_store(
    mdl: MdlRunner, tiny: str, keys: tuple[Path, Path], fmt: str
) -> None:
    private, public = keys
    signed = mdl("sign", tiny, "--key", str(private), "--format", fmt, "--json").json()
    again = mdl("sign", tiny, "--key", str(private), "--format", fmt, "--json").json()
    assert signed["digest"] == again["digest"], "signing the same model twice differs"
    run = mdl("verify", tiny, "--key", str(public), "--json").json()
    assert [v["signature"] for v in run["verified"]] == [signed["digest"]]
    predicate = {"cosign": statements.COSIGN_SIGN_PREDICATE}.get(
        fmt, statements.MODEL_SIGNING_PREDICATE
    )
    assert run["verified"][0]["predicate_type"] == predicate


def test_verify_with_another_key_fails_in_one_line(
    mdl: MdlRunner, tiny: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    mdl("sign", tiny, "--key", str(keys[0]))
    mdl("key", "generate", "--out", str(tmp_path / "mallory"))
    run = mdl("verify", tiny, "--key", str(tmp_path / "mallory.pub"), ok=False)
    assert run.code == 1
    assert run.err.count("\n") == 1
    assert "no signature verifies with this key" in run.err


def test_an_unsigned_model_does_not_verify(
    mdl: MdlRunner, tiny: str, keys: tuple[Path, Path]
) -> None:
    run = mdl("verify", tiny, "--key", str(keys[1]), ok=False)
    assert (run.code, "has no signature" in run.err) == (1, True)


def test_a_signature_moved_to_another_model_is_refused(
    mdl: MdlRunner, mdl_home: Path, tiny: str, models_dir: Path, keys: tuple[Path, Path],
    tmp_path: Path,
) -> None:  # fmt: skip
    private, public = keys
    build_other(mdl, models_dir, tmp_path, "evil:1", "Obey me.")
    for fmt in ("model-signing", "cosign"):
        signed = mdl("sign", tiny, "--key", str(private), "--format", fmt, "--json").json()
        store = Store(mdl_home / "store")
        [referrer] = [r for r in store.referrers(Digest.parse(signed["subject"]))
                      if str(r.digest) == signed["digest"]]  # fmt: skip
        evil = load_model(store, Reference.parse("evil:1"))
        attach_bundle(store, evil.descriptor, bundle_of(store, referrer))
        run = mdl("verify", "evil:1", "--key", str(public), ok=False)
        assert run.code == 1, fmt
        assert "system.txt" in run.err or "signed is manifest" in run.err, run.err


def test_a_changed_statement_or_bundle_is_refused(
    mdl: MdlRunner, mdl_home: Path, tiny: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    genuine = tmp_path / "genuine.sig"
    mdl("sign", tiny, "--key", str(private), "--output", str(genuine))
    bundle = json.loads(genuine.read_bytes())
    statement = sigstore.peek_statement(genuine.read_bytes())
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = tmp_path / "forged.sig"
    forged.write_text(json.dumps(bundle))
    mdl("rm", tiny)
    mdl("build", "-f", str(tmp_path / "Modelfile"), "-t", tiny)
    run = mdl("verify", tiny, "--key", str(public), "--signature", str(forged), ok=False)
    assert run.code == 1
    assert "does not verify with this public key" in run.err
    mdl("verify", tiny, "--key", str(public), "--signature", str(genuine))

    signed = mdl("sign", tiny, "--key", str(private), "--json").json()
    store = Store(mdl_home / "store")
    blob = store.blob_path(Digest.parse(signed["digest"]))
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes().replace(b'"size":', b'"size": '))
    run = mdl("verify", tiny, "--key", str(public), ok=False)
    assert run.code == 1
    assert "corrupt" in run.err


def test_referrers_are_hidden_from_list_and_leave_with_their_model(
    mdl: MdlRunner, mdl_home: Path, tiny: str, keys: tuple[Path, Path]
) -> None:
    signed = mdl("sign", tiny, "--key", str(keys[0]), "--json").json()
    assert [m["name"] for m in mdl("list", "--json").json()["models"]] == [tiny]
    tree = mdl("discover", tiny, "--json").json()
    assert tree["digest"] == signed["subject"]
    [child] = tree["referrers"]
    assert child["digest"] == signed["digest"]
    assert child["artifactType"] == sigstore.BUNDLE_MEDIA_TYPE
    assert child["annotations"]["dev.sigstore.bundle.predicateType"] == (
        statements.MODEL_SIGNING_PREDICATE
    )
    text = mdl("discover", tiny).out
    assert signed["digest"] in text
    store = Store(mdl_home / "store")
    bundle_blobs = {d for d in store.closure(store.referrers(Digest.parse(signed["subject"]))[0])}
    mdl("rm", tiny)
    assert not any(store.has_blob(d) for d in bundle_blobs - {Digest.of(b"{}")})
    assert store.referrers(Digest.parse(signed["subject"])) == []


def test_an_encrypted_key_needs_its_passphrase(mdl: MdlRunner, tiny: str, tmp_path: Path) -> None:
    secret = {"MDL_KEY_PASSPHRASE": "correct horse"}
    mdl("key", "generate", "--out", str(tmp_path / "locked"), env=secret)
    assert b"ENCRYPTED" in (tmp_path / "locked.key").read_bytes()
    refused = mdl("sign", tiny, "--key", str(tmp_path / "locked.key"), ok=False)
    assert refused.code == 1
    assert "private key" in refused.err
    mdl("sign", tiny, "--key", str(tmp_path / "locked.key"), env=secret)
    mdl("verify", tiny, "--key", str(tmp_path / "locked.pub"))


def test_save_and_load_carry_signatures(
    mdl: MdlRunner, tiny: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    signed = mdl("sign", tiny, "--key", str(keys[0]), "--json").json()
    archive = tmp_path / "tiny.tar.zst"
    mdl("save", tiny, "-o", str(archive))
    elsewhere = {"MDL_HOME": str(tmp_path / "elsewhere")}
    mdl("load", "-i", str(archive), env=elsewhere)
    run = mdl("verify", tiny, "--key", str(keys[1]), "--json", env=elsewhere).json()
    assert [v["signature"] for v in run["verified"]] == [signed["digest"]]
    assert [m["name"] for m in mdl("list", "--json", env=elsewhere).json()["models"]] == [tiny]


def test_policy_enforcement_on_a_stored_model(
    mdl: MdlRunner, mdl_home: Path, tiny: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    policy_file = tmp_path / "policy.json"
    shutil.copyfile(keys[1], tmp_path / "team.pub")
    policy_file.write_text(json.dumps({"default": [{"type": "signedBy", "keyPath": "team.pub"}]}))
    policy = load_policy(policy_file)
    store = Store(mdl_home / "store")
    ref = Reference.parse(tiny)
    with pytest.raises(SignatureError, match="no signature by a key the trust policy trusts"):
        enforce(store, load_model(store, ref), ref, policy)
    mdl("key", "generate", "--out", str(tmp_path / "mallory"))
    mdl("sign", tiny, "--key", str(tmp_path / "mallory.key"))
    with pytest.raises(SignatureError, match="requires signedBy"):
        enforce(store, load_model(store, ref), ref, policy)
    mdl("sign", tiny, "--key", str(keys[0]))
    enforce(store, load_model(store, ref), ref, policy)
    policy_file.write_text(json.dumps({"default": [{"type": "reject"}]}))
    with pytest.raises(SignatureError, match="refused by the trust policy"):
        enforce(store, load_model(store, ref), ref, load_policy(policy_file))
    with pytest.raises(SignatureError, match="no such policy file"):
        load_policy(tmp_path / "missing.json")


def test_a_foreign_signature_beside_a_genuine_one_does_not_fail_the_model(
    mdl: MdlRunner, mdl_home: Path, tiny: str, models_dir: Path, keys: tuple[Path, Path],
    tmp_path: Path,
) -> None:  # fmt: skip
    private, public = keys
    build_other(mdl, models_dir, tmp_path, "other:1", "Other.")
    foreign = tmp_path / "foreign.sig"
    mdl("sign", "other:1", "--key", str(private), "--output", str(foreign))
    genuine = mdl("sign", tiny, "--key", str(private), "--json").json()
    store = Store(mdl_home / "store")
    attach_bundle(store, load_model(store, Reference.parse(tiny)).descriptor, foreign.read_bytes())
    run = mdl("verify", tiny, "--key", str(public), "--json").json()
    assert [v["signature"] for v in run["verified"]] == [genuine["digest"]]
