"""Parse ``WWW-Authenticate`` challenges (RFC 7235) as registries send them. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """``Bearer realm="https://a/token",service="a",scope="repository:x:pull"`` → challenges.

    A header may hold several challenges; each starts with a scheme token followed by
    ``key=value`` pairs (values quoted or bare).
    """
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        scheme, _, rest = rest.partition(" ")
        scheme = scheme.strip(", ")
        params: dict[str, str] = {}
        while True:
            match = _PARAM.match(rest)
            if not match:
                break
            quoted, bare = match.group(2), match.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
            params[match.group(1).lower()] = value
            rest = rest[match.end() :]
        if scheme:
            challenges.append(Challenge(scheme.lower(), params))
        rest = rest.lstrip(", ")
    return challenges
