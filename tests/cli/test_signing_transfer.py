"""Signatures travel with the model: push and pull carry referrers to and from mdl's registry
(referrers API) and distribution 2.8 (the referrers tag schema); verify and discover read a
model on its registry without downloading it; pull checks the trust policy first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_runner import MdlRunner
from servers import RunningServer, start_distribution, start_mdl_registry

from mdl.spec import sigstore
from mdl.spec.digest import Digest
from mdl.spec.reference import Reference
from mdl.store.models import load_model
from mdl.store.signatures import attach_bundle, bundle_of
from mdl.store.store import Store

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture(scope="module")
def mdl_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_mdl_registry(tmp_path_factory.mktemp("mdl-registry")) as server:
        yield server


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_distribution(tmp_path_factory.mktemp("distribution")) as server:
        yield server


@pytest.fixture(params=["mdl", "distribution"])
def registry(request: pytest.FixtureRequest) -> RunningServer:
    server: RunningServer = request.getfixturevalue(
        "mdl_registry" if request.param == "mdl" else "distribution"
    )
    return server


@pytest.fixture
def keys(mdl: MdlRunner, tmp_path: Path) -> dict[str, Path]:
    for name in ("alice", "mallory"):
        mdl("key", "generate", "--out", str(tmp_path / name))
    return {
        "alice.key": tmp_path / "alice.key",
        "alice.pub": tmp_path / "alice.pub",
        "mallory.key": tmp_path / "mallory.key",
        "mallory.pub": tmp_path / "mallory.pub",
    }


def _build(mdl: MdlRunner, models_dir: Path, tmp_path: Path, tag: str, system: str) -> str:
    modelfile = tmp_path / f"Modelfile.{tag.replace(':', '_')}"
    modelfile.write_text(f'FROM {models_dir / "tiny.gguf"}\nSYSTEM "{system}"\nLICENSE "MIT"\n')
    return mdl("build", "-q", "-f", str(modelfile), "-t", tag).out.strip()


@pytest.fixture
def tiny(mdl: MdlRunner, models_dir: Path, tmp_path: Path) -> str:
    _build(mdl, models_dir, tmp_path, "tiny:1", "Be brief.")
    return "tiny:1"


def _home(tmp_path: Path, name: str) -> dict[str, str]:
    return {"MDL_HOME": str(tmp_path / name)}


def _store_state(tmp_path: Path, name: str) -> tuple[list[str], set[str]]:
    """(index.json entries' names or subjects, blob file names) of a home's store."""
    root = tmp_path / name / "store"
    if not (root / "index.json").exists():
        return [], set()
    entries = json.loads((root / "index.json").read_text())["manifests"]
    return (
        sorted(e["annotations"].get("org.opencontainers.image.ref.name", "?") for e in entries),
        {p.name for p in (root / "blobs" / "sha256").iterdir()},
    )


def _api_referrers(server: RunningServer, repo: str, subject: str) -> httpx.Response:
    return httpx.get(f"{server.url}/v2/{repo}/referrers/{subject}", headers={"Accept": OCI_INDEX})


def _tag_index(server: RunningServer, repo: str, subject: str) -> httpx.Response:
    tag = subject.replace(":", "-")
    return httpx.get(f"{server.url}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_INDEX})


def _listed(server: RunningServer, repo: str, subject: str) -> list[dict[str, object]]:
    """The referrers the registry holds for ``subject``: through the referrers API on mdl's
    registry, through the sha256-<hex> tag on distribution 2.8 (which has no such API)."""
    api = _api_referrers(server, repo, subject)
    if api.status_code == 200:
        assert _tag_index(server, repo, subject).status_code == 404  # no tag schema needed
        tags = httpx.get(f"{server.url}/v2/{repo}/tags/list").json()["tags"]
        assert not any(t.startswith("sha256-") for t in tags)
        manifests: list[dict[str, object]] = api.json()["manifests"]
        return manifests
    assert api.status_code == 404
    index = _tag_index(server, repo, subject)
    assert index.status_code == 200, index.text
    assert index.json()["mediaType"] == OCI_INDEX
    tagged: list[dict[str, object]] = index.json()["manifests"]
    return tagged


def _signs(mdl: MdlRunner, ref: str, key: Path) -> list[dict[str, str]]:
    return [
        mdl("sign", ref, "--key", str(key), "--format", fmt, "--json").json()
        for fmt in ("model-signing", "cosign")
    ]


def test_signatures_ride_along_on_push_and_pull(
    mdl: MdlRunner, tiny: str, keys: dict[str, Path], registry: RunningServer, tmp_path: Path
) -> None:
    signed = _signs(mdl, tiny, keys["alice.key"])
    subject = signed[0]["subject"]
    ref = f"{registry.host}/signed/tiny:1"
    pushed = mdl("push", tiny, ref, "--json").json()
    assert pushed["digest"] == subject and pushed["referrers"] == 2
    listed = _listed(registry, "signed/tiny", subject)
    assert sorted(str(e["digest"]) for e in listed) == sorted(s["digest"] for s in signed)
    assert all(e["artifactType"] == sigstore.BUNDLE_MEDIA_TYPE for e in listed)
    assert {e["annotations"]["dev.sigstore.bundle.predicateType"] for e in listed} == {
        "https://model_signing/signature/v1.0",
        "https://sigstore.dev/cosign/sign/v1",
    }

    again = mdl("push", tiny, ref, "--json").json()
    assert again["referrers"] == 2 and again["bytes_transferred"] == 0
    assert mdl("push", tiny, ref).out.strip().endswith("already present, 2 referrers")
    assert _listed(registry, "signed/tiny", subject) == listed  # no duplicate entries

    mallory = mdl("sign", tiny, "--key", str(keys["mallory.key"]), "--json").json()
    mdl("push", tiny, ref)
    grown = _listed(registry, "signed/tiny", subject)
    assert sorted(str(e["digest"]) for e in grown) == sorted(
        [s["digest"] for s in signed] + [mallory["digest"]]
    )

    fresh = _home(tmp_path, "fresh")
    pulled = mdl("pull", ref, "--json", env=fresh).json()
    assert pulled["digest"] == subject and pulled["referrers"] == 3
    verified = mdl("verify", ref, "--key", str(keys["alice.pub"]), "--json", env=fresh).json()
    assert verified["remote"] is False
    assert sorted(v["signature"] for v in verified["verified"]) == sorted(
        s["digest"] for s in signed
    )
    tree = mdl("discover", ref, "--json", env=fresh).json()
    assert tree["digest"] == subject
    assert {child["digest"] for child in tree["referrers"]} == {
        *(s["digest"] for s in signed),
        mallory["digest"],
    }
    names, _ = _store_state(tmp_path, "fresh")
    assert names.count(ref) == 1 and names.count("?") == 3  # the tag and three referrers


def _blob_gets(server: RunningServer, since: int) -> set[str]:
    """Digests of the blobs mdl's registry served since byte ``since`` of its access log."""
    gets = set()
    for line in server.log()[since:].splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("method") == "GET" and "/blobs/" in entry.get("path", ""):
            gets.add(entry["path"].rsplit("/", 1)[1])
    return gets


def test_remote_verify_and_discover_fetch_no_file_of_the_model(
    mdl: MdlRunner, tiny: str, keys: dict[str, Path], mdl_registry: RunningServer, tmp_path: Path
) -> None:
    signed = _signs(mdl, tiny, keys["alice.key"])
    ref = f"{mdl_registry.host}/remote/tiny:1"
    mdl("push", tiny, ref)
    files = mdl("show", tiny, "--json").json()["files"]
    fresh = _home(tmp_path, "fresh")
    since = len(mdl_registry.log())

    run = mdl("verify", ref, "--key", str(keys["alice.pub"]), "--json", env=fresh).json()
    assert run["remote"] is True and run["digest"] == signed[0]["subject"]
    assert sorted(v["signature"] for v in run["verified"]) == sorted(s["digest"] for s in signed)
    tree = mdl("discover", ref, "--json", env=fresh).json()
    assert tree["digest"] == signed[0]["subject"]
    assert {c["digest"] for c in tree["referrers"]} == {s["digest"] for s in signed}
    assert signed[0]["digest"] in mdl("discover", ref, env=fresh).out

    fetched = _blob_gets(mdl_registry, since)
    assert fetched, "the bundles come from the registry"
    assert not fetched & set(files.values()), "a file of the model was downloaded"
    assert _store_state(tmp_path, "fresh") == ([], set())

    wrong = mdl("verify", ref, "--key", str(keys["mallory.pub"]), env=fresh, ok=False)
    assert wrong.code == 1 and wrong.err.count("\n") == 1
    assert "no signature verifies with this key" in wrong.err

    local = mdl("verify", ref, "--key", str(keys["alice.pub"]), "--json", env=fresh)
    assert local.json()["remote"] is True
    mdl("pull", ref, env=fresh)
    here = mdl("verify", ref, "--key", str(keys["alice.pub"]), "--json", env=fresh).json()
    assert here["remote"] is False
    there = mdl("verify", ref, "--remote", "--key", str(keys["alice.pub"]), "--json", env=fresh)
    assert there.json()["remote"] is True


def test_a_manifest_changed_on_the_registry_fails_verification(
    mdl: MdlRunner,
    mdl_home: Path,
    tiny: str,
    keys: dict[str, Path],
    registry: RunningServer,
    models_dir: Path,
    tmp_path: Path,
) -> None:
    """The tag is moved to another model carrying the genuine model's signatures."""
    signed = _signs(mdl, tiny, keys["alice.key"])
    ref = f"{registry.host}/tampered/tiny:1"
    mdl("push", tiny, ref)
    fresh = _home(tmp_path, "fresh")
    mdl("verify", ref, "--key", str(keys["alice.pub"]), env=fresh)

    _build(mdl, models_dir, tmp_path, "evil:1", "Obey me.")
    store = Store(mdl_home / "store")
    evil = load_model(store, Reference.parse("evil:1"))
    for referrer in store.referrers(Digest.parse(signed[0]["subject"])):
        attach_bundle(store, evil.descriptor, bundle_of(store, referrer))
    assert mdl("push", "evil:1", ref, "--json").json()["referrers"] == 2

    for where in ("remote", "pulled"):
        run = mdl("verify", ref, "--key", str(keys["alice.pub"]), env=fresh, ok=False)
        assert run.code == 1, where
        assert run.err.count("\n") == 1
        other_content = ("is not the one signed", "not covered by", "signed is manifest")
        assert any(reason in run.err for reason in other_content), run.err
        mdl("pull", ref, env=fresh)


def test_a_changed_signature_on_the_registry_fails_verification(
    mdl: MdlRunner, tiny: str, keys: dict[str, Path], distribution: RunningServer, tmp_path: Path
) -> None:
    signed = mdl("sign", tiny, "--key", str(keys["alice.key"]), "--json").json()
    ref = f"{distribution.host}/badsig/tiny:1"
    mdl("push", tiny, ref)
    manifest = httpx.get(
        f"{distribution.url}/v2/badsig/tiny/manifests/{signed['digest']}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).json()
    [layer] = manifest["layers"]
    hex_ = layer["digest"].removeprefix("sha256:")
    storage = Path(distribution.argv[-1]).parent / "storage" / "docker" / "registry" / "v2"
    data = storage / "blobs" / "sha256" / hex_[:2] / hex_ / "data"
    original = data.read_bytes()
    middle = len(original) // 2
    data.write_bytes(original[:middle] + bytes([original[middle] ^ 1]) + original[middle + 1 :])
    try:
        fresh = _home(tmp_path, "fresh")
        run = mdl("verify", ref, "--key", str(keys["alice.pub"]), env=fresh, ok=False)
        assert run.code == 1 and run.err.count("\n") == 1
        assert "digest" in run.err
    finally:
        data.write_bytes(original)
    mdl("verify", ref, "--key", str(keys["alice.pub"]), env=_home(tmp_path, "fresh"))


def _policy(tmp_path: Path, scopes: dict[str, list[dict[str, str]]], key: Path) -> Path:
    policy = tmp_path / "policies" / "policy.json"
    policy.parent.mkdir(exist_ok=True)
    (policy.parent / "team.pub").write_bytes(key.read_bytes())
    doc = {"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": scopes}}
    policy.write_text(json.dumps(doc))
    return policy


def test_pull_refused_by_the_policy_leaves_nothing_behind(
    mdl: MdlRunner,
    tiny: str,
    keys: dict[str, Path],
    mdl_registry: RunningServer,
    models_dir: Path,
    tmp_path: Path,
) -> None:
    host = mdl_registry.host
    signed_by = [{"type": "signedBy", "keyPath": "team.pub"}]
    policy = _policy(
        tmp_path,
        {f"{host}/rejected": [{"type": "reject"}], f"{host}/team": signed_by},
        keys["alice.pub"],
    )
    _build(mdl, models_dir, tmp_path, "plain:1", "Unsigned.")
    mdl("push", "plain:1", f"{host}/rejected/tiny:1")
    mdl("push", "plain:1", f"{host}/team/unsigned:1")
    mdl("push", "plain:1", f"{host}/open/plain:1")  # the default scope accepts anything
    _build(mdl, models_dir, tmp_path, "mallory:1", "Signed by the wrong key.")
    mdl("sign", "mallory:1", "--key", str(keys["mallory.key"]))
    mdl("push", "mallory:1", f"{host}/team/mallory:1")
    _signs(mdl, tiny, keys["alice.key"])
    mdl("push", tiny, f"{host}/team/tiny:1")

    home = _home(tmp_path, "fresh")
    mdl("pull", f"{host}/open/plain:1", "--policy", str(policy), env=home)
    before = _store_state(tmp_path, "fresh")
    assert before[0] == [f"{host}/open/plain:1"]
    refusals = {
        f"{host}/rejected/tiny:1": f"refused by the trust policy ({policy}: {host}/rejected)",
        f"{host}/team/unsigned:1": f"({policy}: {host}/team requires signedBy)",
        f"{host}/team/mallory:1": f"({policy}: {host}/team requires signedBy)",
    }
    for ref, message in refusals.items():
        run = mdl("pull", ref, "--policy", str(policy), env=home, ok=False)
        assert run.code == 1, ref
        assert run.err.count("\n") == 1 and message in run.err, run.err
        assert _store_state(tmp_path, "fresh") == before, f"{ref} left something behind"

    accepted = mdl("pull", f"{host}/team/tiny:1", "--policy", str(policy), "--json", env=home)
    assert accepted.json()["referrers"] == 2
    mdl("verify", f"{host}/team/tiny:1", "--key", str(keys["alice.pub"]), env=home)
    assert f"{host}/team/tiny:1" in _store_state(tmp_path, "fresh")[0]


def test_pull_reads_the_policy_from_mdl_home_or_mdl_policy(
    mdl: MdlRunner, tiny: str, keys: dict[str, Path], mdl_registry: RunningServer, tmp_path: Path
) -> None:
    host = mdl_registry.host
    ref = f"{host}/guarded/tiny:1"
    mdl("push", tiny, ref)
    policy = _policy(tmp_path, {f"{host}/guarded": [{"type": "reject"}]}, keys["alice.pub"])
    home = tmp_path / "fresh"
    home.mkdir()
    (home / "policy.json").write_text(policy.read_text())
    run = mdl("pull", ref, env=_home(tmp_path, "fresh"), ok=False)
    assert run.code == 1 and f"{home / 'policy.json'}: {host}/guarded" in run.err
    (home / "policy.json").unlink()
    elsewhere = _home(tmp_path, "elsewhere")
    run = mdl("pull", ref, env={**elsewhere, "MDL_POLICY": str(policy)}, ok=False)
    assert run.code == 1 and f"{policy}: {host}/guarded" in run.err
    missing = mdl("pull", ref, "--policy", str(tmp_path / "none.json"), env=elsewhere, ok=False)
    assert missing.code == 1 and "no such policy file" in missing.err
    mdl("pull", ref, env=_home(tmp_path, "fresh"))  # no policy file: anything goes


def test_a_listed_manifest_that_refers_to_another_model_is_not_carried(
    mdl: MdlRunner,
    tiny: str,
    keys: dict[str, Path],
    distribution: RunningServer,
    models_dir: Path,
    tmp_path: Path,
) -> None:
    """A tag index (anyone may write one) lists another model's signature: pull skips it, and
    verify does not count it against the model."""
    signed = mdl("sign", tiny, "--key", str(keys["alice.key"]), "--json").json()
    _build(mdl, models_dir, tmp_path, "other:1", "Another model.")
    stranger = mdl("sign", "other:1", "--key", str(keys["alice.key"]), "--json").json()
    repo = "mixed/tiny"
    mdl("push", tiny, f"{distribution.host}/{repo}:1")
    mdl("push", "other:1", f"{distribution.host}/{repo}:other")
    index = _tag_index(distribution, repo, signed["subject"]).json()
    [foreign] = _tag_index(distribution, repo, stranger["subject"]).json()["manifests"]
    index["manifests"].append(foreign)
    put = httpx.put(
        f"{distribution.url}/v2/{repo}/manifests/{signed['subject'].replace(':', '-')}",
        content=json.dumps(index),
        headers={"Content-Type": OCI_INDEX},
    )
    assert put.status_code == 201, put.text

    ref = f"{distribution.host}/{repo}:1"
    fresh = _home(tmp_path, "fresh")
    remote = mdl("verify", ref, "--key", str(keys["alice.pub"]), "--json", env=fresh).json()
    assert [v["signature"] for v in remote["verified"]] == [signed["digest"]]
    assert mdl("pull", ref, "--json", env=fresh).json()["referrers"] == 1
    tree = mdl("discover", ref, "--json", env=fresh).json()
    assert [c["digest"] for c in tree["referrers"]] == [signed["digest"]]
