"""Pulls from registries and storage hosts that try to take more than they should: credentials
meant for another host, memory for a huge manifest or error body, the terminal through escape
sequences in what they send."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from client_registries import Registry
from servers import self_signed
from standin import Quirks, standin

USER, PASSWORD = "alice", "s3cret"
HUGE = 512 * 1024 * 1024
CONTROL = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)) if chr(c) not in "\n\t"]


def _env(tmp_path: Path, hosts: str | None) -> dict[str, str]:
    env = {"MDL_HOME": str(tmp_path / "other"), "MDL_REGISTRY_USER": USER}
    env["MDL_REGISTRY_PASSWORD"] = PASSWORD
    if hosts is not None:
        env["MDL_REGISTRY_HOST"] = hosts
    return env


def test_a_storage_host_challenge_is_never_answered_with_the_registrys_credentials(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{distribution.host}/quirks/foreign:1")
    quirks = Quirks(redirect_blobs=True, storage_challenge=True)
    with standin(distribution.host, quirks) as host:
        pulled = mdl("pull", f"{host}/quirks/foreign:1", "-q", env=_env(tmp_path, host))
    assert pulled.out.strip() == tiny_model
    asked = [r for r in quirks.token_requests if r["host"] == "storage"]
    assert asked and all(r["authorization"] == "" for r in asked), quirks.token_requests
    assert quirks.storage_auth and set(quirks.storage_auth) == {"Bearer storage-token"}


def test_a_storage_host_naming_the_registrys_realm_gets_no_token_of_the_registrys_user(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    """The storage host challenges with the registry's own realm, service and scope, hoping for
    the token alice was given: tokens are kept per challenger, so it gets an anonymous one."""
    mdl("push", "tiny", f"{distribution.host}/quirks/echo:1")
    quirks = Quirks(
        challenge="bearer", redirect_blobs=True, storage_challenge=True, echo_realm=True
    )
    with standin(distribution.host, quirks) as host:
        pulled = mdl("pull", f"{host}/quirks/echo:1", "-q", env=_env(tmp_path, host))
    assert pulled.out.strip() == tiny_model
    assert "Bearer registry-token-for-alice" in quirks.registry_auth
    assert quirks.storage_auth and set(quirks.storage_auth) == {"Bearer registry-token"}


def test_env_credentials_go_only_to_the_listed_hosts(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{distribution.host}/quirks/scoped:1")

    def pull(env_for: Callable[[str], dict[str, str]]) -> tuple[int, list[str]]:
        """Pull from a registry that asks for basic credentials: exit code, what it was sent."""
        quirks = Quirks(challenge="basic")
        with standin(distribution.host, quirks) as host:
            code = mdl("pull", f"{host}/quirks/scoped:1", "-q", env=env_for(host), ok=False).code
        return code, quirks.registry_auth

    elsewhere = "registry.example.com"
    assert pull(lambda host: _env(tmp_path, f"{elsewhere},127.0.0.2:5000")) == (3, [])
    assert pull(lambda host: _env(tmp_path, None) | {"MDL_DEFAULT_REGISTRY": elsewhere}) == (3, [])
    for env_for in (
        lambda host: _env(tmp_path, f"{elsewhere}, {host}"),
        lambda host: _env(tmp_path, None) | {"MDL_DEFAULT_REGISTRY": host},
    ):
        code, sent = pull(env_for)
        assert code == 0 and sent and all(a.startswith("Basic ") for a in sent)


@pytest.mark.parametrize("route", ["realm", "redirect"])
def test_credentials_never_go_over_plain_http_from_an_https_registry(
    route: str, mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    """``realm``: the registry's bearer realm is an http:// URL. ``redirect``: blobs are sent on
    to an http:// storage host that challenges, though credentials are listed for it too."""
    mdl("push", "tiny", f"{distribution.host}/quirks/downgrade:1")
    cert, key = self_signed(tmp_path)
    if route == "realm":
        quirks = Quirks(challenge="bearer", realm_on_storage=True)
    else:
        quirks = Quirks(redirect_blobs=True, storage_challenge=True)
    with standin(distribution.host, quirks, tls=(cert, key)) as host:
        env = _env(tmp_path, f"{host},{quirks.storage_host}") | {"MDL_CA_BUNDLE": str(cert)}
        pulled = mdl("pull", f"{host}/quirks/downgrade:1", "-q", env=env)
    assert pulled.out.strip() == tiny_model
    assert quirks.token_requests, "no token was asked for"
    assert all(r["authorization"] == "" for r in quirks.token_requests), quirks.token_requests
    assert not [a for a in quirks.storage_auth if not a.startswith("Bearer ")]


def test_a_plain_http_realm_that_wants_credentials_is_refused_with_the_reason(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{distribution.host}/quirks/downgrade:2")
    cert, key = self_signed(tmp_path)
    quirks = Quirks(challenge="bearer", realm_on_storage=True, token_needs_credentials=True)
    with standin(distribution.host, quirks, tls=(cert, key)) as host:
        env = _env(tmp_path, host) | {"MDL_CA_BUNDLE": str(cert)}
        failed = mdl("pull", f"{host}/quirks/downgrade:2", env=env, ok=False)
    assert failed.code == 3
    assert "no credentials go over plain HTTP from an HTTPS registry" in failed.err
    assert [r["authorization"] for r in quirks.token_requests] == [""]


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_a_huge_manifest_is_refused_without_being_read_whole(
    declared: bool, mdl: MdlRunner, distribution: Registry, tmp_path: Path
) -> None:
    quirks = Quirks(huge_manifest=HUGE, declare_length=declared)
    with standin(distribution.host, quirks) as host:
        failed = mdl("pull", f"{host}/quirks/huge:1", env=_env(tmp_path, None), ok=False)
    assert quirks.streamed < 64 * 1024 * 1024  # what the socket buffers hold, not 512 MiB
    assert failed.code == 1 and "over the limit of 4194304" in failed.err
    assert "Traceback" not in failed.err


def test_a_huge_error_body_is_not_read_whole(
    mdl: MdlRunner, distribution: Registry, tmp_path: Path
) -> None:
    quirks = Quirks(huge_error=HUGE)
    with standin(distribution.host, quirks) as host:
        failed = mdl("pull", f"{host}/quirks/huge:1", env=_env(tmp_path, None), ok=False)
    assert quirks.streamed < 64 * 1024 * 1024
    assert failed.code == 4  # still the registry's 404
    assert "404" in failed.err and "error body over 8192 bytes, not read" in failed.err


def test_a_config_too_large_to_read_into_memory_is_refused_before_it_is_fetched(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{distribution.host}/quirks/config:1")
    quirks = Quirks(redirect_blobs=True, config_size=5 * 1024 * 1024)
    with standin(distribution.host, quirks) as host:
        failed = mdl("pull", f"{host}/quirks/config:1", env=_env(tmp_path, None), ok=False)
    assert failed.code == 1
    assert f"a config of {5 * 1024 * 1024} bytes is over the limit of 4194304" in failed.err
    assert quirks.storage_headers == []  # no blob was asked for


def test_an_ollama_template_too_large_to_read_into_memory_is_refused(
    mdl: MdlRunner, distribution: Registry, tmp_path: Path, models_dir: Path
) -> None:
    template = "{{ .Prompt }}" + "x" * (5 * 1024 * 1024)
    (tmp_path / "Modelfile").write_text(
        f'FROM {models_dir / "tiny.gguf"}\nTEMPLATE """{template}"""\n'
    )
    mdl("build", "-q", "-t", "wordy", cwd=tmp_path)
    ref = f"{distribution.host}/quirks/wordy:1"
    mdl("push", "--format", "ollama", "wordy", ref)
    failed = mdl("pull", ref, env=_env(tmp_path, None), ok=False)
    assert failed.code == 1
    assert f"a template of {len(template)} bytes is over the limit of 4194304" in failed.err


@pytest.mark.parametrize("status", [307, 401])
def test_a_huge_redirect_or_challenge_body_is_not_read_whole(
    status: int, mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    """httpx reads these bodies on its own while it follows a redirect or answers a challenge."""
    mdl("push", "tiny", f"{distribution.host}/quirks/detour:1")
    quirks = Quirks(huge_detour=HUGE, detour=status)
    with standin(distribution.host, quirks) as host:
        failed = mdl("pull", f"{host}/quirks/detour:1", env=_env(tmp_path, host), ok=False)
    assert quirks.streamed < 64 * 1024 * 1024
    assert failed.code == 1 and f"{status} answer over the limit of 8192 bytes" in failed.err


def test_a_registry_error_message_reaches_the_terminal_without_control_characters(
    mdl: MdlRunner, distribution: Registry, tmp_path: Path
) -> None:
    message = "\x1b]0;owned\x07\x1b[2J\rnot \u202eallowed\x9b31m\nLogin Succeeded"
    with standin(distribution.host, Quirks(deny_message=message)) as host:
        failed = mdl("pull", f"{host}/quirks/denied:1", env=_env(tmp_path, None), ok=False)
    assert failed.code == 3
    assert "]0;owned[2Jnot allowed31m Login Succeeded" in failed.err
    assert not [c for c in [*CONTROL, "\u202e"] if c in failed.err]
    assert failed.err.count("\n") == 1


TITLE = "weights\x1b]0;owned\x07\x1b[5m[/bold]\rnotes.txt"
SHOWN = "weights]0;owned[5m[/bold]notes.txt"


def test_a_file_name_from_annotations_is_printed_without_control_characters(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{distribution.host}/quirks/title:1")
    with standin(distribution.host, Quirks(layer_title=TITLE)) as host:
        pulled = mdl("pull", f"{host}/quirks/title:1", env=_env(tmp_path, None))
    assert f"{SHOWN}: " in pulled.err
    assert not [c for c in CONTROL if c in pulled.out + pulled.err]


def test_progress_on_a_terminal_shows_remote_file_names_inert(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    """On a TTY the progress bars name the layers: the name's escape sequences are gone, and
    its brackets are text, not rich markup ("[/bold]" once crashed the bar)."""
    mdl("push", "tiny", f"{distribution.host}/quirks/tty:1")
    with standin(distribution.host, Quirks(layer_title=TITLE)) as host:
        code, shown = _on_a_terminal(
            ["pull", f"{host}/quirks/tty:1"],
            _env(tmp_path, None) | {"TERM": "xterm", "COLUMNS": "200"},
        )
    assert code == 0, shown
    assert "]0;owned" in shown and "[/bold]" in shown  # the name was shown...
    assert "\x1b]0;owned" not in shown and "\x1b[5m" not in shown and "\x07" not in shown


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; its exit code and output."""
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "mdl.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, **env},
    ) as child:
        os.close(follower)
        output = bytearray()
        while True:
            ready, _, _ = select.select([leader], [], [], 120)
            assert ready, "the CLI printed nothing for 120 s"
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: every end of the terminal is closed
                break
            if not data:
                break
            output += data
        os.close(leader)
        code = child.wait(timeout=60)
    return code, output.decode(errors="replace")


def test_a_referrers_listing_without_end_is_refused_before_it_is_followed(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    ref = "quirks/crowded:1"
    mdl("push", "tiny", f"{distribution.host}/{ref}")
    key = tmp_path / "alice"
    mdl("key", "generate", "--out", str(key))
    quirks = Quirks(referrers=1025)
    with standin(distribution.host, quirks) as host:
        env = _env(tmp_path, None)
        for args in (["pull", "-q"], ["discover"], ["verify", "--key", f"{key}.pub"]):
            failed = mdl(args[0], f"{host}/{ref}", *args[1:], env=env, ok=False)
            assert failed.code == 1, args
            assert failed.err.count("\n") == 1 and "more than 1024 referrers" in failed.err
    assert quirks.listed_gets == 0


def test_a_referrers_listing_in_pages_is_read_to_its_end(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    key = tmp_path / "alice"
    mdl("key", "generate", "--out", str(key))
    signed = {
        mdl("sign", "tiny", "--key", f"{key}.key", "--format", fmt, "--json").json()["digest"]
        for fmt in ("model-signing", "cosign")
    }
    ref = "quirks/paged:1"
    mdl("push", "tiny", f"{distribution.host}/{ref}")
    quirks = Quirks(page_referrers=True)
    with standin(distribution.host, quirks) as host:
        env = _env(tmp_path, None)
        args = ["--remote", "--key", f"{key}.pub", "--json"]
        remote = mdl("verify", f"{host}/{ref}", *args, env=env).json()
        assert {v["signature"] for v in remote["verified"]} == signed
        assert mdl("pull", f"{host}/{ref}", "--json", env=env).json()["referrers"] == 2
    assert quirks.pages >= 4  # two pages for each of the two listings
