"""`telemed vault rewrap`: after a master key rotation, re-wrap every encrypted file's data
key under the new master key (set as master_key, the old one in previous_master_keys)."""

from __future__ import annotations

from pathlib import Path

from vault import KeyRing, VaultError, rewrap_tree

from .config import Settings, reveal

USAGE = "usage: telemed vault rewrap"


def run(settings: Settings, words: list[str]) -> str:
    if words != ["rewrap"]:
        raise SystemExit(USAGE)
    data = Path(settings.data_dir)
    key_file = Path(settings.master_key_file) if settings.master_key_file else data / "keys" / "master.key"
    if not settings.master_key and not key_file.is_file():
        raise SystemExit(f"telemed: no master key: set master_key or master_key_file ({key_file} is missing)")
    try:
        ring = KeyRing.load(reveal(settings.master_key), key_file, [reveal(k) for k in settings.previous_master_keys])
        changed, seen = rewrap_tree(data, ring)
    except VaultError as exc:
        raise SystemExit(f"telemed: {exc} (is the old key in previous_master_keys?)") from None
    except OSError as exc:
        raise SystemExit(f"telemed: {exc}") from None
    return f"re-wrapped {changed} of {seen} encrypted files under master key {ring.key_id.hex()}"
