"""Visitor identities the server issued: a random id signed with a per-deployment secret.

Public mode scopes history and results to a visitor. If the client could name its own identity
(the old ``?visitor=…`` string), an attacker could hand a victim a link carrying the attacker's
identity and later read whatever the victim did under it (token fixation). So an identity is
only ever *created* here: ``v1.<id>.<mac>`` where ``id`` is 128 random bits and ``mac`` an
HMAC-SHA256 of it under a secret only the server knows. A value the server did not sign —
forged, truncated, from another deployment — verifies to nothing, and the caller issues a fresh
identity: it never maps onto somebody else's data.

The secret comes from ``VLMLAB_VISITOR_SECRET`` (a Space secret) or is created once in the data
directory (``visitor_secret``, mode 0600) so identities survive a restart of the server. No
Streamlit here: :mod:`dashboard.ui.visitor` carries the token in a cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SECRET_ENV = "VLMLAB_VISITOR_SECRET"
SECRET_FILE = "visitor_secret"
_VERSION = "v1"
_ID_BYTES = 16
_MAC_BYTES = 16
_MIN_SECRET_BYTES = 16
_TOKEN_RE = re.compile(r"v1\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})")


class SecretError(RuntimeError):
    """The visitor secret is unusable (too short, or the file cannot be created/read safely)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class VisitorSigner:
    """Issues and verifies visitor tokens under one deployment secret."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < _MIN_SECRET_BYTES:
            raise SecretError(f"the visitor secret must have at least {_MIN_SECRET_BYTES} bytes")

    def _mac(self, visitor_id: str) -> str:
        digest = hmac.new(self.secret, f"{_VERSION}.{visitor_id}".encode(), hashlib.sha256).digest()
        return _b64(digest[:_MAC_BYTES])

    def issue(self) -> str:
        """A new token: 128 random bits (``secrets``) and their signature."""
        visitor_id = _b64(secrets.token_bytes(_ID_BYTES))
        return f"{_VERSION}.{visitor_id}.{self._mac(visitor_id)}"

    def verify(self, token: object) -> str | None:
        """The visitor id of a token this deployment issued; None for anything else."""
        if not isinstance(token, str):
            return None
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            return None
        visitor_id, mac = match.groups()
        if len(_unb64(visitor_id)) != _ID_BYTES:
            return None
        return visitor_id if hmac.compare_digest(mac, self._mac(visitor_id)) else None


def deployment_secret(data_dir: Path, env: Mapping[str, str] | None = None) -> bytes:
    """``VLMLAB_VISITOR_SECRET`` if set, else the data dir's ``visitor_secret`` (created 0600 once).

    The file is written under a temporary name and linked into place (``os.link`` fails if the
    name exists): two server processes starting together end with one complete secret. A file
    others can read is refused, not used.
    """
    env = os.environ if env is None else env
    configured = env.get(SECRET_ENV, "").strip()
    if configured:
        return configured.encode()
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE
    if not path.exists():
        temp = data_dir / f".{SECRET_FILE}.{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))
            os.link(temp, path)
        except FileExistsError:
            pass  # another process won the race: use its secret
        finally:
            temp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as handle:
        if os.fstat(handle.fileno()).st_mode & 0o077:
            raise SecretError(f"{path.name} in the data directory is readable by others; "
                              "remove it (a new one is created) or chmod 600 it")
        text = handle.read().strip()
    if len(text) < _MIN_SECRET_BYTES:  # a half-written file from a crashed start
        raise SecretError(f"{path.name} in the data directory is too short; remove it to create a new one")
    return text.encode()
