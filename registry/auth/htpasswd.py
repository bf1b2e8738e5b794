"""An Apache htpasswd file of bcrypt hashes (``htpasswd -B``), read once at start."""

from __future__ import annotations

from pathlib import Path

import bcrypt

from mdl.spec.errors import MdlError

BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")


class HtpasswdError(MdlError):
    exit_code = 2


class Htpasswd:
    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users

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
            if not hashed.startswith(BCRYPT_PREFIXES):
                raise HtpasswdError(f"{path}:{number}: only bcrypt hashes (htpasswd -B)")
            users[user] = hashed.encode()
        return cls(users)

    def verify(self, user: str, password: str) -> bool:
        hashed = self._users.get(user)
        if hashed is None:
            return False
        try:
            return bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False
