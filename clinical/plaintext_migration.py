"""One-time migration of a data directory written before encryption at rest: every
clinical object, ECG recording and session log still in plaintext is encrypted in place
(atomically, one file at a time), so an interrupted migration simply continues on the
next start."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from clinical.jsonl import JsonlFile
from clinical.object_store import write_encrypted
from vault import KeyRing
from vault.sealed_lines import is_header
from vault.stream_format import MAGIC

log = logging.getLogger("telemed.clinical")


def plaintext_files(root: Path) -> Iterator[Path]:
    candidates = [*root.glob("objects/??/*"), *root.glob("rooms/*/*/ecg/*.ecg")]
    for path in candidates:
        if path.is_file() and not path.name.startswith(".tmp-"):
            with open(path, "rb") as f:
                if f.read(len(MAGIC)) != MAGIC:
                    yield path


def encrypt_plaintext_files(root: str | Path, ring: KeyRing) -> int:
    """Encrypt what is left in plaintext under ``root``; returns how many files."""
    count = 0
    for path in plaintext_files(Path(root)):
        write_encrypted(path, path.read_bytes(), ring)
        count += 1
    for path in Path(root).glob("rooms/*/*/session.jsonl"):
        with open(path, "rb") as f:
            first = f.readline()
        if first and not is_header(first):
            JsonlFile(path, ring=ring).close()  # opening with a ring seals it whole
            count += 1
    if count:
        log.warning("encrypted %d clinical file(s) that were stored in plaintext", count)
    return count
