"""An Apache htpasswd file of bcrypt hashes (``htpasswd -B``), read once at start.

bcrypt reads only the first 72 bytes of a password, and ``htpasswd -B`` hashes exactly those;
the python ``bcrypt`` package (5.x) raises on longer input instead, so ``verify`` cuts at 72
bytes as the algorithm defines. An unknown user is checked against a dummy hash of the file's
highest cost, so a wrong user name takes as long as a wrong password.
"""

from __future__ import annotations

import re
from pathlib import Path

import bcrypt

from mdl.spec.errors import MdlError

BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
BCRYPT_MAX_BYTES = 72
DEFAULT_COST = 5
"""``htpasswd -B``'s default, for the dummy hash of a file with no users."""
RESERVED_USERS = frozenset({"anonymous"})
"""The policy's name for callers without credentials: no htpasswd user may take it."""
_COST = re.compile(r"\$2[aby]\$(\d\d)\$")


class HtpasswdError(MdlError):
    exit_code = 2


class Htpasswd:
    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        costs = [int(m.group(1)) for h in users.values() if (m := _COST.match(h.decode()))]
        self._dummy = bcrypt.hashpw(b"dummy", bcrypt.gensalt(max(costs, default=DEFAULT_COST)))

    @classmethod
    def load(cls, path: Path) -> Htpasswd:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise HtpasswdError(f"{path}: cannot read: {exc}") from exc
        users: dict[str, bytes] = {}
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise HtpasswdError(f"{path}:{number}: expected user:hash")
            if user in RESERVED_USERS:
                raise HtpasswdError(
                    f"{path}:{number}: the user name {user!r} is reserved for callers "
                    "without credentials"
                )
            if not _COST.match(hashed) or not hashed.startswith(BCRYPT_PREFIXES):
                raise HtpasswdError(f"{path}:{number}: only bcrypt hashes (htpasswd -B)")
            users[user] = hashed.encode()
        return cls(users)

    def verify(self, user: str, password: str) -> bool:
        hashed = self._users.get(user)
        candidate = password.encode()[:BCRYPT_MAX_BYTES]
        try:
            matches = bcrypt.checkpw(candidate, hashed if hashed is not None else self._dummy)
        except ValueError:
            return False
        return matches and hashed is not None
