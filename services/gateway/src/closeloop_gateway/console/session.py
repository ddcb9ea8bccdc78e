"""The console session: a signed, HttpOnly, SameSite=Strict cookie that never holds the key.

The cookie carries the SHA-256 of the API key (what the key store is looked up by), the
display name the person gave and a per-session CSRF token, signed with the console's
secret (itsdangerous) and timestamped. The raw key is used once, at sign-in, and never
stored: a stolen cookie cannot be turned back into an API key, a cookie cannot be made
from a leaked key hash without the secret, and revoking the key ends the session at the
next request (the key lookup answers "no such key").
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "closeloop_console"
LANGUAGE_COOKIE = "closeloop_lang"
# Display names travel upstream in X-Closeloop-Actor, so they obey the key names' rule:
# printable ASCII.
DISPLAY_NAME = re.compile(r"^[\x20-\x7e]{1,64}$")


@dataclass(frozen=True, slots=True)
class Session:
    key_hash: str
    display_name: str | None
    csrf_token: str


class SessionCodec:
    def __init__(self, secret: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="closeloop-console-session")
        self.max_age_s = max_age_s

    def new(self, key_hash: str, display_name: str | None) -> Session:
        return Session(key_hash, display_name, secrets.token_urlsafe(24))

    def dumps(self, session: Session) -> str:
        return self._serializer.dumps(
            {"k": session.key_hash, "u": session.display_name, "c": session.csrf_token}
        )

    def loads(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None if it is missing, forged or expired."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age_s)
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None
        if not isinstance(data, dict):
            return None
        key_hash, name, token = data.get("k"), data.get("u"), data.get("c")
        if not isinstance(key_hash, str) or not isinstance(token, str):
            return None
        return Session(key_hash, name if isinstance(name, str) else None, token)


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and secrets.compare_digest(expected.encode(), given.encode())
