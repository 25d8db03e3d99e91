"""Start-up of the audit trail: the data directory must take writes, the key comes from
the settings or its key file, and torn logs are repaired on the record."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from clinical.actor import Actor
from clinical.audit_trail import AUDIT_FILE, AuditTrail
from clinical.jsonl import repair_tree
from clinical.storage import check_writable

from .cluster_node import is_multinode, node_identity
from .config import Settings, reveal
from vault.key_file import load_or_create_secret

log = logging.getLogger("telemed.audit")


def audit_key(settings: Settings) -> bytes:
    if settings.audit_key:
        return reveal(settings.audit_key).encode()
    path = key_file(settings)
    secret, created = load_or_create_secret(path)
    if created:
        log.warning("created the audit key; back it up apart from the data directory: without it "
                    "the audit trail cannot be verified", extra={"fields": {"key_file": str(path)}})
    return secret.encode()


def key_file(settings: Settings) -> Path:
    return Path(settings.audit_key_file or Path(settings.data_dir) / "keys" / "audit.key")


def trail_location(settings: Settings) -> tuple[Path, str]:
    """Where this node's audit chain lives, and the prefix of its anchor in Redis. Nodes
    sharing a data directory each keep their own chain, under ``nodes/<node_id>``."""
    if is_multinode(settings):
        node = node_identity(settings)
        return Path(settings.data_dir) / "nodes" / node, f"telemed:node-audit:{node}:"
    return Path(settings.data_dir), "telemed:"


def open_audit_trail(settings: Settings) -> AuditTrail:
    """Refuses (StorageUnavailable, ValueError) rather than serve without a working trail."""
    root = Path(settings.data_dir)
    check_writable(root)
    trail_root, anchor_prefix = trail_location(settings)
    trail_root.mkdir(parents=True, exist_ok=True)
    trail = AuditTrail(trail_root, audit_key(settings), reveal(settings.audit_anchor_redis), anchor_prefix)
    if trail_root != root:
        # Other nodes may be appending to the room logs here right now: each log is repaired
        # by whoever opens it next (JsonlFile does), not swept at start-up.
        return trail
    for path, cut in repair_tree(root, skip=root / AUDIT_FILE):
        trail.record_blocking("log-repaired", Actor.server(), object_id=os.path.relpath(path, root),
                              bytes_cut=cut)
        log.warning("repaired a torn log", extra={"fields": {"file": str(path), "bytes_cut": cut}})
    return trail
