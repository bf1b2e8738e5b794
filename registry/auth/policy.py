"""Who may do what to which repository: the policy file and anonymous pull.

The policy is TOML; each ``[[allow]]`` grants ``actions`` (pull, push, delete) on the
``repositories`` (glob patterns; ``*`` crosses ``/``) to ``users`` (names from the htpasswd
file, ``*`` for any signed-in user, ``anonymous`` for callers without credentials). Grants add
up. Without a policy file every signed-in user may do everything. ``--anonymous-pull NS``
grants pull on ``NS`` and ``NS/*`` to anonymous callers (``*`` for every repository).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from mdl.spec.errors import MdlError

ACTIONS = frozenset({"pull", "push", "delete"})
ANONYMOUS = "anonymous"
ANY_USER = "*"


class PolicyError(MdlError):
    exit_code = 2


@dataclass(frozen=True)
class Rule:
    repositories: tuple[str, ...]
    users: frozenset[str]
    actions: frozenset[str]

    def grants(self, user: str | None, name: str) -> frozenset[str]:
        who = ANONYMOUS if user is None else user
        named = who in self.users or (user is not None and ANY_USER in self.users)
        if named and any(fnmatchcase(name, pattern) for pattern in self.repositories):
            return self.actions
        return frozenset()


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]

    def allowed(self, user: str | None, name: str) -> frozenset[str]:
        """Every action ``user`` (None: anonymous) may take on repository ``name``."""
        granted: frozenset[str] = frozenset()
        for rule in self.rules:
            granted |= rule.grants(user, name)
            if user is not None:
                granted |= rule.grants(None, name)
        return granted

    @classmethod
    def build(cls, path: Path | None, anonymous_pull: Iterable[str] = ()) -> Policy:
        """The policy file's rules (or 'signed-in users may do everything') plus anonymous pull."""
        rules = list(load_rules(path)) if path else [Rule(("*",), frozenset({ANY_USER}), ACTIONS)]
        for namespace in anonymous_pull:
            patterns = ("*",) if namespace == "*" else (namespace, f"{namespace}/*")
            rules.append(Rule(patterns, frozenset({ANONYMOUS}), frozenset({"pull"})))
        return cls(tuple(rules))


def load_rules(path: Path) -> list[Rule]:
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the policy: {exc}") from exc
    entries = document.get("allow", [])
    if not isinstance(entries, list) or set(document) - {"allow"}:
        raise PolicyError(f"{path}: the policy holds only [[allow]] tables")
    return [_rule(path, number, entry) for number, entry in enumerate(entries, 1)]


def _rule(path: Path, number: int, entry: object) -> Rule:
    where = f"{path}: [[allow]] #{number}"
    if not isinstance(entry, dict) or set(entry) != {"repositories", "users", "actions"}:
        raise PolicyError(f"{where}: needs exactly repositories, users and actions")
    fields = {key: entry[key] for key in ("repositories", "users", "actions")}
    for key, value in fields.items():
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise PolicyError(f"{where}: {key} must be a list of strings")
    unknown = set(fields["actions"]) - ACTIONS
    if unknown:
        raise PolicyError(f"{where}: unknown actions {sorted(unknown)} (pull, push, delete)")
    repositories, users, actions = fields["repositories"], fields["users"], fields["actions"]
    return Rule(tuple(repositories), frozenset(users), frozenset(actions))
