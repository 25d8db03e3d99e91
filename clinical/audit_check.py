"""``telemed audit verify``: is the audit trail in a data directory whole and unaltered?

Checks every record's HMAC and link, then that every anchored day head (the anchor file
and, if configured, Redis) is still in the chain. A log from before audit keys is
reported as unkeyed: its plain hash chain could have been rewritten by anyone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from redis import RedisError

from clinical.audit import verify
from clinical.audit_anchor import AnchorFile, RedisAnchor, anchored_seqs
from clinical.audit_trail import ANCHOR_FILE, AUDIT_FILE, CUT_PREFIX, UNKEYED_PREFIX
from clinical.errors import ClinicalError

_VERDICT = {"audit-unkeyed": "UNKEYED", "audit-truncated": "TRUNCATED"}


@dataclass
class TrailReport:
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def fail(self, line: str) -> None:
        self.ok = False
        self.lines.append(line)


def check_trail(data_dir: str | os.PathLike[str], key: bytes, redis_url: str | None = None,
                redis_prefix: str = "telemed:") -> TrailReport:
    root = Path(data_dir)
    report = TrailReport()
    path = root / AUDIT_FILE
    if not path.is_file():
        report.fail(f"MISSING: no {AUDIT_FILE} in {root}")
    else:
        try:
            heads = [AnchorFile(root / ANCHOR_FILE, key).load()]
            if redis_url:
                redis = RedisAnchor(redis_url, redis_prefix)
                try:
                    heads.append(redis.load())
                finally:
                    redis.close()
            anchors = anchored_seqs(*heads)
            check = verify(path, key, anchors)
            if check.records and not anchors:
                report.fail(f"UNANCHORED: {check.records} records but no anchor: a cut-off tail cannot "
                            "be ruled out")
            else:
                days = sorted(set().union(*heads))
                report.lines.append(f"OK: {check.records} records, every HMAC and link intact"
                                    + (f", anchored through {days[-1]}" if days else ""))
            if check.torn_tail:
                report.lines.append("note: an incomplete last line (a crash); the next start cuts it off")
        except ClinicalError as exc:
            report.fail(f"{_VERDICT.get(exc.code, 'TAMPERED')}: {exc.message}")
        except (OSError, RedisError) as exc:
            report.fail(f"UNREADABLE: {exc}")
    for cut in sorted(root.glob(f"{CUT_PREFIX}*.jsonl")):
        report.fail(f"TRUNCATED: {cut.name} was found cut short of its anchor at start-up and set aside "
                    "(its anchor beside it); a new chain began there")
    for old in sorted(root.glob(f"{UNKEYED_PREFIX}*.jsonl")):
        report.fail(f"UNKEYED: {old.name} was written before audit keys; it cannot prove it was not "
                    "rewritten (move it out of the data directory once reviewed)")
    return report
