"""``mdl serve`` enforces the trust policy (``$MDL_HOME/policy.json``) before it loads a model,
seen through the real ``ollama`` and ``openai`` clients; the model is signed with ``mdl sign``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ollama
import openai
import pytest
from serving import Served, running

POLICY = {
    "default": [{"type": "insecureAcceptAnything"}],
    "transports": {
        "docker": {
            "registry.test/blocked": [{"type": "reject"}],
            "registry.test/team": [{"type": "signedBy", "keyPath": "team.pub"}],
        }
    },
}
BLOCKED = "registry.test/blocked/tiny:1"
UNSIGNED = "registry.test/team/unsigned:1"
SIGNED = "registry.test/team/signed:1"
LATER = "registry.test/team/later:1"
SHORT = {"num_predict": 4}


def mdl(home: Path, *args: str) -> None:
    """The real CLI on the server's MDL_HOME."""
    run = subprocess.run(
        [sys.executable, "-m", "mdl.cli", *args],
        env={**os.environ, "MDL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Served]:
    """A server whose policy rejects one namespace and wants signatures by team.pub in another."""
    home = tmp_path_factory.mktemp("trust-home")
    server = Served(home)
    for seed, name in enumerate(("tiny", BLOCKED, UNSIGNED, SIGNED, LATER)):
        # distinct content: a signature vouches for a manifest, whatever its name
        server.build(name, f"FROM ./tiny.gguf\nPARAMETER seed {seed}\n", models_dir)
    mdl(home, "key", "generate", "--out", str(home / "team"))
    mdl(home, "sign", SIGNED, "--key", str(home / "team.key"))
    (home / "policy.json").write_text(json.dumps(POLICY))
    yield from running(server)


@pytest.fixture(scope="module")
def native(guarded: Served) -> Iterator[ollama.Client]:
    with ollama.Client(host=guarded.url) as client:
        yield client


@pytest.fixture(scope="module")
def compat(guarded: Served) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=guarded.url + "/v1", api_key="x", max_retries=0) as client:
        yield client


def test_a_rejected_model_is_refused_in_ollamas_api(native: ollama.Client) -> None:
    for call in (
        lambda: native.generate(model=BLOCKED, prompt="hi", options=SHORT),
        lambda: native.chat(model=BLOCKED, messages=[{"role": "user", "content": "hi"}]),
        lambda: native.embed(model=BLOCKED, input="hi"),
        lambda: list(native.generate(model=BLOCKED, prompt="hi", stream=True)),
    ):
        with pytest.raises(ollama.ResponseError) as caught:
            call()
        assert caught.value.status_code == 403
        assert caught.value.error == (
            f"{BLOCKED}: refused by the trust policy ($MDL_HOME/policy.json: registry.test/blocked)"
        )
    assert BLOCKED not in {m.model for m in native.ps().models}


def test_a_rejected_model_is_refused_in_openais_api(compat: openai.OpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        compat.chat.completions.create(model=BLOCKED, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 403
    error = caught.value.body
    assert isinstance(error, dict) and error["type"] == "permission_error"
    assert (
        "refused by the trust policy ($MDL_HOME/policy.json: registry.test/blocked)"
        in (error["message"])
    )


def test_an_unsigned_model_is_refused_where_a_signature_is_required(
    native: ollama.Client, compat: openai.OpenAI
) -> None:
    expected = (
        f"{UNSIGNED}: no signature by a key the trust policy trusts "
        "($MDL_HOME/policy.json: registry.test/team requires signedBy)"
    )
    with pytest.raises(ollama.ResponseError) as caught:
        native.generate(model=UNSIGNED, prompt="hi", options=SHORT)
    assert (caught.value.status_code, caught.value.error) == (403, expected)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        compat.completions.create(model=UNSIGNED, prompt="hi", max_tokens=4)
    assert isinstance(denied.value.body, dict) and denied.value.body["message"] == expected


def test_a_model_signed_with_a_trusted_key_is_served(
    native: ollama.Client, compat: openai.OpenAI
) -> None:
    answer = native.generate(model=SIGNED, prompt="hi", options=SHORT)
    assert answer.done and answer.eval_count == 4
    chat = compat.chat.completions.create(
        model=SIGNED, messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert chat.usage and chat.usage.completion_tokens == 4
    assert native.generate(model="tiny", prompt="hi", options=SHORT).done  # default scope


def test_signing_a_model_takes_effect_on_the_next_request(
    guarded: Served, native: ollama.Client
) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        native.generate(model=LATER, prompt="hi", options=SHORT)
    assert caught.value.status_code == 403
    mdl(guarded.home, "sign", LATER, "--key", str(guarded.home / "team.key"))
    assert native.generate(model=LATER, prompt="hi", options=SHORT).eval_count == 4


def test_a_broken_policy_stops_the_server_at_start(tmp_path: Path) -> None:
    (tmp_path / "policy.json").write_text('{"default": [{"type": "trustMe"}]}')
    run = subprocess.run(
        [sys.executable, "-m", "mdl.cli", "serve"],
        env={**os.environ, "MDL_HOME": str(tmp_path), "MDL_HOST": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "type 'trustMe': want one of insecureAcceptAnything, reject, signedBy" in run.stderr
