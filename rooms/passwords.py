"""Room password hashing with scrypt.

The stored form is ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (base64url, unpadded), so the cost can
be raised later without breaking hashes already stored.

We use hashlib's scrypt (OpenSSL) rather than cryptography's: it releases the GIL while it
works (~0.1 s at these parameters), so callers can run it in a thread without pausing media
forwarding on the event loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import unicodedata


MAX_PASSWORD_LENGTH = 1024
MIN_PASSWORD_LENGTH = 8
MIN_DISTINCT_CHARACTERS = 4

_SCHEME = "scrypt"
_N, _R, _P = 2**15, 8, 1  # 32 MiB of memory per hash
_SALT_BYTES = 16
_KEY_BYTES = 32
# Bounds on parameters read back from storage: a tampered record must not make us allocate
# gigabytes or spin for minutes.
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16


class _Tally:
    """A counter that threads may bump together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


_derivations = _Tally()


def scrypt_runs() -> int:
    """How many scrypt derivations this process has run: for metrics, and for tests that
    must show a guess was refused without one."""
    return _derivations.value


def check_password_strength(password: str, room: str) -> None:
    """Refuse, with a message for the person choosing it, a password too easy to guess."""
    if not isinstance(password, str):
        raise ValueError("password must be a string")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    if password.isdigit():
        raise ValueError("password must not be only digits")
    if len(set(password.casefold())) < MIN_DISTINCT_CHARACTERS:
        raise ValueError(f"password must use at least {MIN_DISTINCT_CHARACTERS} different characters")
    if password.casefold() == room.casefold():
        raise ValueError("password must not be the room name")


def hash_password(password: str, like: str | None = None) -> str:
    """With ``like``, reuse that stored hash's salt and cost: a room's passwords for its
    several roles share them, so that one derivation checks a guess against all of them."""
    secret = _encode(password)
    if like is None:
        n, r, p, salt = _N, _R, _P, os.urandom(_SALT_BYTES)
    else:
        n, r, p, salt, _ = _parse(like)
    key = _derive(secret, salt, n, r, p)
    return "$".join((_SCHEME, str(n), str(r), str(p), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str | None) -> bool:
    """True if ``password`` matches ``stored``.

    ``stored`` None (no such room) is checked against a hash of the same cost that nothing
    matches, so the answer takes as long as for a room that exists.
    A candidate that could never have been hashed (empty, too long, not a string) is simply a
    wrong password. A malformed ``stored`` value is a server-side fault and raises ValueError.
    """
    return match_password(password, None if stored is None else [stored]) == 0


def match_password(password: object, stored: list[str] | None) -> int | None:
    """The index of the hash in ``stored`` that ``password`` matches, else None.

    The hashes must share salt and cost (see ``hash_password(like=...)``): one derivation,
    whatever their number, so a room with several role passwords answers as fast as any.
    ``stored`` None costs the same as one hash, as verify_password explains.
    """
    hashes = [_parse(h) for h in ([_NOBODY] if stored is None else stored)]
    n, r, p, salt, _ = hashes[0]
    if any(h[:4] != (n, r, p, salt) for h in hashes):
        raise ValueError("stored password hashes do not share salt and cost")
    try:
        secret = _encode(password)
    except ValueError:
        return None
    derived = _derive(secret, salt, n, r, p)
    found = None
    for index, (*_, expected) in enumerate(hashes):
        if hmac.compare_digest(derived, expected) and found is None:
            found = index
    return None if stored is None else found


def _encode(password: str) -> bytes:
    if not isinstance(password, str):
        raise ValueError("password must be a string")
    if not password:
        raise ValueError("password must not be empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")
    # The same password typed on different keyboards/OSes can arrive in different Unicode forms.
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def _derive(secret: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    _derivations.add()
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024,
                          dklen=_KEY_BYTES)


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    malformed = ValueError("stored password hash is malformed")
    if not isinstance(stored, str):
        raise malformed
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise malformed
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise malformed from None
    if not (
        2 <= n <= _MAX_N
        and n & (n - 1) == 0
        and 1 <= r <= _MAX_R
        and 1 <= p <= _MAX_P
        and salt
        and len(key) == _KEY_BYTES
    ):
        raise malformed
    return n, r, p, salt, key


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64") from exc


# The stored form of no password: current cost, and a key that nothing derives to.
_NOBODY = "$".join((_SCHEME, str(_N), str(_R), str(_P), _b64(bytes(_SALT_BYTES)), _b64(bytes(_KEY_BYTES))))
