"""The keyed audit chain: a rewritten record, a removed record and a cut-off tail are
found; a chain rewritten without the key, or from before keys, never passes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from clinical.actor import Actor
from clinical.audit import GENESIS, record_mac, verify
from clinical.audit_anchor import RedisAnchor
from clinical.audit_check import check_trail
from clinical.audit_trail import ANCHOR_FILE, AUDIT_FILE, AuditTrail
from clinical.errors import ClinicalError
from clinical.jsonl import JsonlFile
from clinical.storage import StorageUnavailable
from signaling.audit_setup import open_audit_trail
from signaling.config import Settings
from tests.server import free_port
from tests.tmpfs import Filler, small_disk  # noqa: F401 (fixture)

KEY = b"audit-key-for-tests-0123456789abcdef"
DR = Actor("dr-li", "Dr Li", "host", "password", "127.0.0.1", "jti-1")
ROOT = Path(__file__).resolve().parent.parent


def trail_with(data_dir: Path, count: int, redis_url: str | None = None) -> AuditTrail:
    trail = AuditTrail(data_dir, KEY, redis_url)
    for i in range(count):
        trail.record_blocking("open", DR, "consult", f"obj-{i}", frame=i)
    return trail


def lines_of(data_dir: Path) -> list[bytes]:
    return (data_dir / AUDIT_FILE).read_bytes().splitlines(keepends=True)


def test_intact_trail_verifies(tmp_path):
    trail_with(tmp_path, 5)._log.close()
    report = check_trail(tmp_path, KEY)
    assert report.ok, report.lines
    assert report.lines[0].startswith("OK: 5 records")


def test_rewritten_record_is_found(tmp_path):
    trail_with(tmp_path, 5)._log.close()
    lines = lines_of(tmp_path)
    lines[2] = lines[2].replace(b"obj-2", b"obj-7")
    (tmp_path / AUDIT_FILE).write_bytes(b"".join(lines))
    report = check_trail(tmp_path, KEY)
    assert not report.ok and report.lines == [
        "TAMPERED: record 3 was altered or made with another key "
        f"(its key id {json.loads(lines[2])['kid']}, this key's {json.loads(lines[2])['kid']})"]


def test_removed_record_is_found_even_when_the_rest_is_renumbered(tmp_path):
    trail_with(tmp_path, 5)._log.close()
    lines = lines_of(tmp_path)
    (tmp_path / AUDIT_FILE).write_bytes(b"".join(lines[:1] + lines[2:]))
    report = check_trail(tmp_path, KEY)
    assert not report.ok and "chain broken at record 2" in report.lines[0]
    # Renumbering and relinking without the key breaks every HMAC it touches instead.
    records = [json.loads(line) for line in lines[:1] + lines[2:]]
    for seq, record in enumerate(records, 1):
        record["seq"] = seq
        record["prev"] = records[seq - 2]["mac"] if seq > 1 else GENESIS
    (tmp_path / AUDIT_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    assert check_trail(tmp_path, KEY).lines[0].startswith("TAMPERED: record 2 was altered")


def test_cut_off_tail_is_found_against_the_anchor(tmp_path):
    trail_with(tmp_path, 6)._log.close()
    lines = lines_of(tmp_path)
    (tmp_path / AUDIT_FILE).write_bytes(b"".join(lines[:4]))
    assert verify(tmp_path / AUDIT_FILE, KEY).records == 4  # the chain alone cannot tell
    report = check_trail(tmp_path, KEY)
    assert not report.ok
    assert report.lines == ["TRUNCATED: the log ends at record 4, but record 6 was anchored: its tail "
                            "was cut off"]
    (tmp_path / ANCHOR_FILE).unlink()  # and without its anchor, it cannot pass either
    assert check_trail(tmp_path, KEY).lines[0].startswith("UNANCHORED: 4 records")


def test_chain_rewritten_without_the_key_never_passes(tmp_path):
    trail_with(tmp_path, 4)._log.close()
    forged_key = b"x" * 32
    prev, forged = GENESIS, []
    for line in lines_of(tmp_path):  # a consistent chain, with fresh HMACs under a guessed key
        record = json.loads(line)
        record["details"]["frame"] = 99
        record["prev"] = prev
        record["mac"] = prev = record_mac(forged_key, record)
        forged.append(json.dumps(record, separators=(",", ":")) + "\n")
    (tmp_path / AUDIT_FILE).write_text("".join(forged))
    assert check_trail(tmp_path, forged_key).ok is False  # not even under the forger's key: the anchor
    report = check_trail(tmp_path, KEY)
    assert not report.ok and report.lines[0].startswith("TAMPERED: record 1 was altered")


def test_anchor_file_edits_are_found(tmp_path):
    trail_with(tmp_path, 3)._log.close()
    anchor = json.loads((tmp_path / ANCHOR_FILE).read_text())
    day = next(iter(anchor["days"]))
    anchor["days"][day]["seq"] = 2
    (tmp_path / ANCHOR_FILE).write_text(json.dumps(anchor))
    report = check_trail(tmp_path, KEY)
    assert not report.ok and report.lines == [f"TAMPERED: {ANCHOR_FILE} was altered or made with another key"]


@pytest.fixture
def anchor_redis(redis_url):
    """The session's Redis, without the anchors an earlier test left there."""
    client = redis.Redis.from_url(redis_url)
    client.delete("telemed:audit:anchors")
    client.close()
    return redis_url


def test_redis_anchor_finds_a_cut_hidden_by_an_old_anchor_file(tmp_path, anchor_redis):
    redis_url = anchor_redis
    trail = trail_with(tmp_path, 3, redis_url)
    old_anchor = (tmp_path / ANCHOR_FILE).read_bytes()
    for i in range(3):
        trail.record_blocking("preview", DR, "consult", f"late-{i}")
    trail._log.close()
    lines = lines_of(tmp_path)
    (tmp_path / AUDIT_FILE).write_bytes(b"".join(lines[:3]))
    (tmp_path / ANCHOR_FILE).write_bytes(old_anchor)  # rolled back along with the log
    assert check_trail(tmp_path, KEY).ok  # on this disk alone the cut is invisible
    report = check_trail(tmp_path, KEY, redis_url)
    assert not report.ok and report.lines[0].startswith("TRUNCATED: the log ends at record 3, but record 6")


def test_unkeyed_log_is_set_aside_and_never_reported_ok(tmp_path):
    # The format before keys: a plain SHA-256 chain anyone can recompute.
    prev, lines = GENESIS, []
    for seq in (1, 2):
        line = json.dumps({"seq": seq, "actor": "dr-li", "action": "open", "prev": prev},
                          separators=(",", ":")).encode()
        lines.append(line + b"\n")
        prev = hashlib.sha256(line).hexdigest()
    (tmp_path / AUDIT_FILE).write_bytes(b"".join(lines))
    report = check_trail(tmp_path, KEY)
    assert not report.ok and report.lines[0].startswith("UNKEYED: record 1 carries no HMAC")
    trail = AuditTrail(tmp_path, KEY)  # the server's start: a new keyed chain begins
    trail._log.close()
    (archived,) = tmp_path.glob("audit-unkeyed-*.jsonl")
    assert archived.read_bytes() == b"".join(lines)
    first = json.loads(lines_of(tmp_path)[0])
    assert first["action"] == "audit-archived" and first["object"] == archived.name
    assert first["details"]["sha256"] == hashlib.sha256(b"".join(lines)).hexdigest()
    report = check_trail(tmp_path, KEY)
    assert not report.ok
    assert report.lines[0].startswith("OK: 1 records")
    assert report.lines[1].startswith(f"UNKEYED: {archived.name} was written before audit keys")


def test_another_key_refuses_to_continue_the_chain(tmp_path):
    trail_with(tmp_path, 2)._log.close()
    with pytest.raises(ClinicalError) as e:
        AuditTrail(tmp_path, b"y" * 32)
    assert e.value.code == "audit-key-mismatch"


async def test_concurrent_records_form_one_chain(tmp_path):
    trail = AuditTrail(tmp_path, KEY)
    entries = await asyncio.gather(*(trail.record("join", DR, "consult", f"peer-{i}") for i in range(200)))
    await trail.close()
    assert [e["seq"] for e in entries] == list(range(1, 201))  # in call order
    assert [e["object"] for e in entries] == [f"peer-{i}" for i in range(200)]
    assert check_trail(tmp_path, KEY).ok


def test_key_file_is_created_private_and_reused(tmp_path):
    settings = Settings(data_dir=str(tmp_path / "data"))
    trail = open_audit_trail(settings)
    trail.record_blocking("login", DR, "consult")
    trail._log.close()
    key_file = tmp_path / "data" / "keys" / "audit.key"
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    assert os.stat(key_file.parent).st_mode & 0o077 == 0
    assert key_file.read_text().strip().encode() == trail.key
    assert trail.key.decode() not in (tmp_path / "data" / AUDIT_FILE).read_text()
    again = open_audit_trail(settings)  # same key: the chain continues
    assert again.key == trail.key and again.record_blocking("leave", DR, "consult")["seq"] == 2
    again._log.close()


def run_verify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "signaling", "audit", "verify", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_verify_exit_codes(tmp_path):
    data = tmp_path / "data"
    trail = open_audit_trail(Settings(data_dir=str(data)))
    for i in range(3):
        trail.record_blocking("open", DR, "consult", f"obj-{i}")
    trail._log.close()
    done = run_verify("--data-dir", str(data))
    assert (done.returncode, done.stdout) == (0, f"OK: 3 records, every HMAC and link intact, anchored "
                                                 f"through {json.loads(lines_of(data)[-1])['wall'][:10]}\n")
    (data / AUDIT_FILE).write_bytes(b"".join(lines_of(data)[:2]))
    done = run_verify("--data-dir", str(data))
    assert done.returncode == 1 and done.stdout.startswith("TRUNCATED:") and "Traceback" not in done.stderr
    done = run_verify("--data-dir", str(tmp_path / "nothing-here"))
    assert done.returncode == 1 and "no audit key" in done.stderr


# --- a full disk under the logs themselves ---------------------------------------------------


def test_a_refused_write_leaves_nothing_half_written(small_disk):
    log = JsonlFile(small_disk / "log.jsonl")
    log.append({"n": 0}, durable=True)
    filler = Filler(small_disk)
    big = {"text": "x" * 20000}  # more than any page the disk has left
    with pytest.raises(StorageUnavailable) as e:
        log.append(big, durable=True)
    assert e.value.code == "storage-unavailable"
    assert (small_disk / "log.jsonl").read_bytes() == b'{"n":0}\n'  # cut back
    filler.remove()
    log.append({"n": 1}, durable=True)
    log.close()
    assert [r["n"] for r in JsonlFile(small_disk / "log.jsonl").read()] == [0, 1]


def test_audit_batch_on_a_full_disk_is_all_or_nothing(small_disk):
    trail = AuditTrail(small_disk, KEY)
    trail.record_blocking("open", DR, "consult", "before")
    filler = Filler(small_disk)
    with pytest.raises(StorageUnavailable):
        trail.record_blocking("open", DR, "consult", "x" * 200, note="y" * 20000)
    filler.remove()
    trail.record_blocking("open", DR, "consult", "after")
    trail._log.close()
    assert [json.loads(line)["object"] for line in lines_of(small_disk)] == ["before", "after"]
    assert check_trail(small_disk, KEY).ok


def test_a_tail_cut_while_stopped_is_kept_as_evidence_on_start(tmp_path):
    trail_with(tmp_path, 6)._log.close()
    lines = lines_of(tmp_path)
    (tmp_path / AUDIT_FILE).write_bytes(b"".join(lines[:4]))
    trail = AuditTrail(tmp_path, KEY)  # the next start must not anchor over the cut
    trail.record_blocking("login", DR, "consult")
    trail._log.close()
    (cut,) = tmp_path.glob("audit-cut-*.jsonl")
    assert cut.read_bytes() == b"".join(lines[:4])
    assert (tmp_path / f"{cut.stem}-anchor.json").is_file()
    first = json.loads(lines_of(tmp_path)[0])
    assert (first["action"], first["object"], first["details"]["records"], first["details"]["anchored"]) == (
        "audit-tail-cut", cut.name, 4, 6)
    report = check_trail(tmp_path, KEY)
    assert not report.ok
    assert report.lines[0].startswith("OK: 2 records")
    assert report.lines[1].startswith(f"TRUNCATED: {cut.name} was found cut short")


def test_redis_outage_does_not_stall_auditing_and_heads_catch_up(tmp_path, anchor_redis):
    redis_url = anchor_redis
    port = free_port()  # nothing listens here: Redis is down
    trail = AuditTrail(tmp_path, KEY, f"redis://127.0.0.1:{port}/0")
    for i in range(20):
        trail.record_blocking("open", DR, "consult", f"obj-{i}")  # one failed try, then queued
    trail._redis._redis = RedisAnchor(redis_url)._redis  # Redis is back
    trail._redis._retry_at = 0.0  # (instead of waiting RETRY_SECONDS)
    trail.record_blocking("open", DR, "consult", "obj-20")
    trail._log.close()
    assert check_trail(tmp_path, KEY, redis_url).ok
    (tmp_path / AUDIT_FILE).write_bytes(b"".join(lines_of(tmp_path)[:20]))
    (tmp_path / ANCHOR_FILE).unlink()
    assert check_trail(tmp_path, KEY, redis_url).lines[0].startswith("TRUNCATED: the log ends at record 20, "
                                                                     "but record 21")
