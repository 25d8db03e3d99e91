"""A key generated once and kept in a file only its owner may read (0600, in a 0700
directory when it makes one), so that what it signs or encrypts (room tokens, links, the
audit chain, data at rest) outlives a restart when no key is configured."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

MIN_SECRET_CHARS = 43  # 32 random bytes in base64url


def load_or_create_secret(path: Path) -> tuple[str, bool]:
    """A random signing secret kept in ``path``: ``(secret, created)``."""
    secret, created = load_or_create(path, lambda: secrets.token_urlsafe(48))
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(f"{path} holds no usable secret (at least {MIN_SECRET_CHARS} characters)")
    return secret, created


def load_or_create(path: Path, new: Callable[[], str]) -> tuple[str, bool]:
    """The text in ``path`` (stripped), or ``new()`` written there if there is none.

    Returns ``(text, created)``. Two processes starting together on one data directory
    agree on one key: the file appears complete or not at all (written aside, then
    hard-linked into place, which fails if another process got there first). A file that
    others may read is refused rather than used.
    """
    path = Path(path)
    try:
        return _read(path), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = new()
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:
            return _read(path), False
        _fsync_dir(path.parent)
        return secret, True
    finally:
        aside.unlink(missing_ok=True)


def _read(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path} is readable by others: chmod 600 it, or configure the key")
    return path.read_text(encoding="utf-8").strip()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
