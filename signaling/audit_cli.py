"""``telemed audit verify [--data-dir DIR] [other settings]``: exit 0 when the audit trail
is whole and unaltered, 1 otherwise, with one plain line per finding."""

from __future__ import annotations

import sys

from clinical.audit_check import check_trail

from .audit_setup import key_file, trail_location
from .config import Settings, reveal


def run(settings: Settings, words: list[str]) -> int:
    if words != ["verify"]:
        print("usage: telemed audit verify [--data-dir DIR] [--audit-key-file FILE] "
              "[--audit-anchor-redis URL]", file=sys.stderr)
        return 2
    try:
        key = read_key(settings)
    except (ValueError, OSError) as exc:
        print(f"telemed audit: {exc}", file=sys.stderr)
        return 1
    root, anchor_prefix = trail_location(settings)  # one node's chain in a cluster (--node-id)
    report = check_trail(root, key, reveal(settings.audit_anchor_redis), anchor_prefix)
    for line in report.lines:
        print(line)
    return 0 if report.ok else 1


def read_key(settings: Settings) -> bytes:
    """The configured key, or the key file's; never creates one (that is serve's job)."""
    if settings.audit_key:
        return reveal(settings.audit_key).encode()
    path = key_file(settings)
    try:
        return path.read_text(encoding="utf-8").strip().encode()
    except FileNotFoundError:
        raise ValueError(f"no audit key: {path} does not exist and audit_key is not set") from None
