"""The trust policy file: its grammar, and which scope applies to a reference."""

from __future__ import annotations

import base64
import json

import pytest

from mdl.spec.errors import SignatureError
from mdl.spec.policy import ACCEPT_ANYTHING, Kind, Policy, Requirement
from mdl.spec.reference import Reference

KEYS = {"team.pub": b"TEAM-PEM", "a.pub": b"A-PEM"}


def parse(doc: object) -> Policy:
    return Policy.parse(json.dumps(doc).encode(), "policy.json", KEYS.__getitem__)


POLICY = parse(
    {
        "default": [{"type": "insecureAcceptAnything"}],
        "transports": {
            "docker": {
                "reg.example": [{"type": "reject"}],
                "reg.example/team": [{"type": "signedBy", "keyPath": "team.pub"}],
                "reg.example/team/llama": [
                    {"type": "signedBy", "keyPaths": ["a.pub"],
                     "keyData": base64.b64encode(b"B-PEM").decode()}
                ],
            }
        },
    }
)  # fmt: skip


@pytest.mark.parametrize(
    ("ref", "scope"),
    [
        ("reg.example/team/llama:1", "reg.example/team/llama"),
        ("reg.example/team/llama-2:1", "reg.example/team"),
        ("reg.example/team/sub/x:1", "reg.example/team"),
        ("reg.example/other/x:1", "reg.example"),
        ("reg.example:5000/team/x:1", "default"),
        ("tiny:1", "default"),
        ("other.example/team/llama:1", "default"),
    ],
)
def test_the_most_specific_scope_applies(ref: str, scope: str) -> None:
    assert POLICY.scope_of(Reference.parse(ref)) == scope


def test_requirements_carry_their_keys() -> None:
    assert POLICY.requirements(Reference.parse("reg.example/team/llama:1")) == (
        Requirement(Kind.SIGNED_BY, (b"A-PEM", b"B-PEM")),
    )
    assert POLICY.requirements(Reference.parse("reg.example/x/y")) == (Requirement(Kind.REJECT),)
    assert POLICY.requirements(Reference.parse("tiny")) == ACCEPT_ANYTHING


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "want an object with a 'default'"),
        ({"default": []}, "non-empty list"),
        ({"default": [{"type": "trustMe"}]}, "type 'trustMe': want one of"),
        ({"default": [{"type": "signedBy"}]}, "signedBy needs keyPath"),
        ({"default": [{"type": "signedBy", "keyData": "%%"}]}, "keyData is not base64"),
        ({"default": [{"type": "reject"}], "transports": {"docker": []}}, "transports.docker"),
    ],
)
def test_bad_policies_are_named_errors(doc: object, message: str) -> None:
    with pytest.raises(SignatureError, match=r"policy\.json: ") as caught:
        parse(doc)
    assert message in str(caught.value)


def test_a_policy_that_is_not_json() -> None:
    with pytest.raises(SignatureError, match=r"policy\.json: not JSON"):
        Policy.parse(b"{", "policy.json", KEYS.__getitem__)
