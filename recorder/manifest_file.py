"""A recording's manifest on disk: JSON, encrypted with the recording's data key (the
same vault stream format as its media), replaced whole on every save (temporary file,
fsync, rename), so a crash leaves the previous or the new one, never half of either.
``publish`` sees the sealed new file before it replaces the old one (the S3 archive uploads
it there), so the local manifest says only what has already happened elsewhere."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from vault import ByteSource, EncryptedReader, EncryptedWriter, KeyRing

NAME = "manifest.json.enc"


def save(directory: Path, manifest: dict, data_key: bytes, wrapped: bytes,
         publish: Callable[[Path], None] | None = None) -> None:
    target = directory / NAME
    # A name of its own: nodes sharing the data directory may save the same manifest.
    tmp = directory / f".{NAME}.{secrets.token_hex(6)}.tmp"
    try:
        with EncryptedWriter(tmp, data_key, wrapped, fsync_interval=0) as out:
            out.write(json.dumps(manifest, separators=(",", ":")).encode())
        if publish is not None:
            publish(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(directory: Path, ring: KeyRing) -> tuple[dict, bytes]:
    """(manifest, wrapped data key)."""
    return read(directory / NAME, ring)


def read(source: Path | ByteSource, ring: KeyRing) -> tuple[dict, bytes]:
    """(manifest, wrapped data key) from a manifest file, or its copy elsewhere."""
    with EncryptedReader(source, ring) as reader:
        if not reader.complete:
            raise ValueError(f"{reader.path} was not closed")
        return json.loads(reader.read_at(0, reader.size)), reader.wrapped
