"""Session logs encrypted at rest: every line sealed on its own, with the log's durability,
torn-tail repair, migration of plaintext logs, and key rotation."""

from __future__ import annotations

import pytest

from clinical.errors import ClinicalError
from clinical.jsonl import read_jsonl
from clinical.plaintext_migration import encrypt_plaintext_files
from clinical.session_log import SessionLog
from vault import KeyRing, rewrap_tree
from vault.sealed_lines import is_header

RING = KeyRing(bytes(range(32)))
LAB = {"results": [{"code": "2823-3", "value": 6.4, "unit": "mmol/L", "patient": "Yamada^Tarou"}]}


def write_log(path, ring=RING, entries=3) -> None:
    with SessionLog(path, ring=ring) as log:
        for i in range(entries):
            log.append("lab", f"dr-{i}", LAB)


def test_entries_round_trip_and_nothing_is_in_the_clear(tmp_path):
    path = tmp_path / "session.jsonl"
    write_log(path)
    raw = path.read_bytes()
    assert is_header(raw.split(b"\n")[0])
    assert b"Yamada" not in raw and b"2823-3" not in raw and b"dr-1" not in raw and b"seq" not in raw
    entries = list(SessionLog(path, ring=RING).read())
    assert [(e["seq"], e["sender"], e["body"]) for e in entries] == [(i + 1, f"dr-{i}", LAB) for i in range(3)]
    with SessionLog(path, ring=RING) as log:  # reopening continues the numbering
        assert log.last_seq == 3 and log.append("chat", "a", {})["seq"] == 4


def test_an_empty_sealed_log_reopens_at_zero(tmp_path):
    path = tmp_path / "session.jsonl"
    SessionLog(path, ring=RING).close()
    with SessionLog(path, ring=RING) as log:
        assert log.last_seq == 0 and not list(log.read())


def test_torn_sealed_tail_is_cut_on_reopen(tmp_path):
    path = tmp_path / "session.jsonl"
    write_log(path, entries=2)
    with open(path, "ab") as f:
        f.write(b"q83v")  # a crash in the middle of a sealed line
    assert [e["seq"] for e in read_jsonl(path, RING)] == [1, 2]
    with SessionLog(path, ring=RING) as log:
        assert log.repaired == 4 and log.append("chat", "a", {})["seq"] == 3


def test_a_sealed_log_needs_its_key(tmp_path):
    path = tmp_path / "session.jsonl"
    write_log(path)
    with pytest.raises(ClinicalError) as no_key:
        list(read_jsonl(path))
    assert no_key.value.code == "log-sealed"
    with pytest.raises(ClinicalError) as wrong_key:
        list(read_jsonl(path, KeyRing(bytes(32))))
    assert wrong_key.value.code == "log-corrupt"


def test_tampered_or_transplanted_lines_are_refused(tmp_path):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    write_log(one)
    write_log(two)
    lines = one.read_bytes().split(b"\n")
    flipped = lines[:]
    flipped[2] = flipped[2][:10] + (b"A" if flipped[2][10:11] != b"A" else b"B") + flipped[2][11:]
    one.write_bytes(b"\n".join(flipped))
    with pytest.raises(ClinicalError) as tampered:
        list(read_jsonl(one, RING))
    assert tampered.value.code == "log-corrupt"
    other = two.read_bytes().split(b"\n")
    one.write_bytes(b"\n".join([lines[0], other[1], b""]))  # a line of another log
    with pytest.raises(ClinicalError) as moved:
        list(read_jsonl(one, RING))
    assert moved.value.code == "log-corrupt"


def test_a_plaintext_session_log_is_sealed_once_by_the_migration(tmp_path):
    path = tmp_path / "rooms" / "r1" / "1700000000000" / "session.jsonl"
    path.parent.mkdir(parents=True)
    with SessionLog(path) as log:  # written before encryption at rest
        log.append("lab", "dr-a", LAB)
        log.append("chat", "dr-b", {"text": "seen"})
    assert b"Yamada" in path.read_bytes()
    assert encrypt_plaintext_files(tmp_path, RING) == 1
    assert encrypt_plaintext_files(tmp_path, RING) == 0  # already done
    raw = path.read_bytes()
    assert b"Yamada" not in raw and b"seen" not in raw
    assert not list(path.parent.glob(".tmp-*"))
    assert [e["seq"] for e in read_jsonl(path, RING)] == [1, 2]
    with SessionLog(path, ring=RING) as log:
        assert log.append("chat", "a", {})["seq"] == 3


def test_rotation_rewraps_a_sealed_log_in_place(tmp_path):
    path = tmp_path / "rooms" / "r1" / "1" / "session.jsonl"
    path.parent.mkdir(parents=True)
    write_log(path)
    before = path.read_bytes()
    rotated = KeyRing(bytes(range(1, 33)), previous=[bytes(range(32))])
    assert rewrap_tree(tmp_path, rotated) == (1, 1)
    after = path.read_bytes()
    assert len(after) == len(before) and after.split(b"\n")[1:] == before.split(b"\n")[1:]
    assert [e["seq"] for e in read_jsonl(path, KeyRing(bytes(range(1, 33))))] == [1, 2, 3]
    assert rewrap_tree(tmp_path, rotated) == (0, 1)
