"""Object store, session log, audit log and late-joiner state."""

import hashlib
import json
import os

import pytest

from clinical.audit import REDACTED, AuditLog, scrub, verify
from clinical.ecg import STANDARD_LEADS, EcgAnnounce
from clinical.errors import ClinicalError
from clinical.object_store import ObjectStore
from clinical.plaintext_migration import encrypt_plaintext_files
from clinical.session_log import SessionLog
from clinical.session_state import SessionState
from vault import KeyRing

RING = KeyRing(bytes(range(32)))


def code_of(excinfo) -> str:
    return excinfo.value.code


# --- object store -----------------------------------------------------------------------


def test_put_get_dedup(tmp_path):
    store = ObjectStore(tmp_path / "objects", RING)
    key = store.put(b"dicom bytes")
    assert key == hashlib.sha256(b"dicom bytes").hexdigest()
    assert store.put(b"dicom bytes") == key
    assert store.get(key) == b"dicom bytes"
    assert key in store and "0" * 64 not in store and "../x" not in store
    files = [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]
    assert files == [tmp_path / "objects" / key[:2] / key]  # stored once, no temporary files left
    assert b"dicom bytes" not in files[0].read_bytes()  # encrypted at rest


def test_objects_need_their_key(tmp_path):
    key = ObjectStore(tmp_path, RING).put(b"DICM and more")
    with pytest.raises(ClinicalError) as e:
        ObjectStore(tmp_path, KeyRing(bytes(32))).get(key)
    assert code_of(e) == "object-corrupt"


def test_plaintext_objects_and_ecg_recordings_are_encrypted_once(tmp_path):
    plain = b"\x00" * 128 + b"DICM" + b"pixel data"
    key = hashlib.sha256(plain).hexdigest()
    (tmp_path / "objects" / key[:2]).mkdir(parents=True)
    (tmp_path / "objects" / key[:2] / key).write_bytes(plain)
    ecg = tmp_path / "rooms" / "r1" / "1700000000000" / "ecg" / "a-1-5.ecg"
    ecg.parent.mkdir(parents=True)
    ecg.write_bytes(b"ecg frames")
    assert encrypt_plaintext_files(tmp_path, RING) == 2
    assert encrypt_plaintext_files(tmp_path, RING) == 0  # already done
    assert b"DICM" not in (tmp_path / "objects" / key[:2] / key).read_bytes()
    assert b"ecg frames" not in ecg.read_bytes()
    assert ObjectStore(tmp_path / "objects", RING).get(key) == plain


@pytest.mark.parametrize(
    "key",
    [
        "../" + "a" * 61,
        "..",
        "/etc/passwd",
        "a" * 63,
        "a" * 65,
        "A" * 64,
        "g" * 64,
        "a" * 63 + "/",
        "a" * 64 + "\n",
        "",
        None,
        "%2e%2e%2f" + "a" * 55,
    ],
)
def test_path_traversal_and_malformed_keys(tmp_path, key):
    store = ObjectStore(tmp_path, RING)
    with pytest.raises(ClinicalError) as e:
        store.get(key)
    assert code_of(e) == "object-key"


def test_missing_and_corrupt_objects(tmp_path):
    store = ObjectStore(tmp_path, RING)
    with pytest.raises(ClinicalError) as e:
        store.get("0" * 64)
    assert code_of(e) == "object-not-found"
    key = store.put(b"original")
    location = tmp_path / key[:2] / key
    sealed = location.read_bytes()
    for damaged in (b"tampered", sealed[:-1] + bytes([sealed[-1] ^ 1]), sealed[:-20]):
        location.write_bytes(damaged)
        with pytest.raises(ClinicalError) as e:
            store.get(key)
        assert code_of(e) == "object-corrupt"


def test_put_refuses_non_bytes(tmp_path):
    with pytest.raises(ClinicalError):
        ObjectStore(tmp_path, RING).put("text")  # type: ignore[arg-type]


# --- session log --------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_append_stamps_seq_and_times(tmp_path):
    clock = FakeClock(100.0)
    with SessionLog(tmp_path / "s.jsonl", clock=clock) as log:
        a = log.append("chat", "alice", {"text": "hello"})
        clock.now = 100.5
        b = log.append("lab", "bob", {"results": []})
    assert (a["seq"], b["seq"]) == (1, 2)
    assert (a["t"], b["t"]) == (100.0, 100.5)
    assert a["wall"].endswith("+00:00")
    assert [e["kind"] for e in SessionLog(tmp_path / "s.jsonl").read()] == ["chat", "lab"]


def test_seq_continues_after_reopen(tmp_path):
    path = tmp_path / "s.jsonl"
    with SessionLog(path) as log:
        for i in range(5):
            log.append("chat", "alice", {"i": i})
    with SessionLog(path) as log:
        assert log.last_seq == 5
        assert log.append("chat", "alice", {"i": 5})["seq"] == 6
    assert [e["seq"] for e in SessionLog(path).read()] == [1, 2, 3, 4, 5, 6]


def test_seq_continues_with_long_entries(tmp_path):
    path = tmp_path / "s.jsonl"
    with SessionLog(path) as log:
        log.append("note", "a", {"text": "x" * 200_000})
        log.append("note", "a", {"text": "y" * 200_000})
    with SessionLog(path) as log:
        assert log.append("note", "a", {})["seq"] == 3


def test_t_never_runs_backwards_after_a_reboot(tmp_path):
    path = tmp_path / "s.jsonl"
    with SessionLog(path, clock=FakeClock(5000.0)) as log:
        log.append("chat", "a", {})
    rebooted = FakeClock(12.0)
    with SessionLog(path, clock=rebooted) as log:
        first = log.append("chat", "a", {})
        rebooted.now = 13.0
        second = log.append("chat", "a", {})
    assert first["t"] == 5000.0 and second["t"] == 5001.0


def test_torn_tail_is_cut_on_reopen(tmp_path):
    path = tmp_path / "s.jsonl"
    with SessionLog(path) as log:
        log.append("chat", "a", {"n": 1})
        log.append("chat", "a", {"n": 2})
    with open(path, "ab") as f:
        f.write(b'{"seq":3,"t":1.0,"kind":"ch')  # crash mid-write
    assert [e["seq"] for e in SessionLog(path).read()] == [1, 2]
    with SessionLog(path) as log:
        assert log.append("chat", "a", {"n": 3})["seq"] == 3
    assert [e["body"]["n"] for e in SessionLog(path).read()] == [1, 2, 3]


def test_file_with_only_a_torn_line(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"seq":1,')
    with SessionLog(path) as log:
        assert log.append("chat", "a", {})["seq"] == 1


def test_corrupt_last_entry_is_reported(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"not json\n")
    with pytest.raises(ClinicalError) as e:
        SessionLog(path)
    assert code_of(e) == "log-corrupt"


@pytest.mark.parametrize(
    "kind,sender,body",
    [
        ("Chat", "a", {}),
        ("", "a", {}),
        ("chat\n", "a", {}),
        ("chat", "", {}),
        ("chat", "a", ["not", "a", "dict"]),
        ("chat", "a", {"x": float("nan")}),
        ("chat", "a", {"x": object()}),
        ("chat", "a", {"x": "y" * (1024 * 1024)}),
    ],
)
def test_bad_entries_are_refused_and_seq_does_not_advance(tmp_path, kind, sender, body):
    with SessionLog(tmp_path / "s.jsonl") as log:
        with pytest.raises(ClinicalError):
            log.append(kind, sender, body)
        assert log.append("chat", "a", {})["seq"] == 1
    assert len(list(SessionLog(tmp_path / "s.jsonl").read())) == 1


def test_log_file_is_private(tmp_path):
    with SessionLog(tmp_path / "s.jsonl") as log:
        log.append("chat", "a", {})
    assert os.stat(tmp_path / "s.jsonl").st_mode & 0o077 == 0


# --- audit ---------------------------------------------------------------------------------


def test_audit_records_and_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    entry = audit.record("dr-li", "dicom.view", "ab" * 32, "room-1", ip="10.0.0.5", frame=3)
    assert (entry["actor"], entry["action"], entry["object"], entry["room"]) == (
        "dr-li",
        "dicom.view",
        "ab" * 32,
        "room-1",
    )
    assert entry["details"] == {"ip": "10.0.0.5", "frame": 3}
    audit.record("dr-wang", "lab.share", "2823-3", "room-1")
    audit.close()
    reopened = AuditLog(path)
    assert reopened.record("dr-li", "dicom.download", "ab" * 32, "room-1")["seq"] == 3
    reopened.close()
    assert verify(path) == 3


def test_audit_never_stores_secrets(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkci1saSJ9.c2lnbmF0dXJl"
    audit.record(
        "dr-li",
        "login",
        "user:dr-li",
        "room-1",
        password="hunter2",
        access_token=token,
        headers={"Authorization": f"Bearer {token}", "X-Api-Key": "k-123", "Accept": "json"},
        note=f"used {token} from the link",
        pin="1234",
        spinal_level="L4",
    )
    audit.close()
    text = path.read_text()
    for secret in ("hunter2", token, "k-123", "1234"):
        assert secret not in text
    details = json.loads(text)["details"]
    assert details["password"] == REDACTED and details["headers"]["Accept"] == "json"
    assert details["spinal_level"] == "L4"
    assert details["note"] == f"used {REDACTED} from the link"


def test_scrub_leaves_plain_values():
    assert scrub({"frame": 2, "window": [40, 400], "name": "ct.dcm"}) == {
        "frame": 2,
        "window": [40, 400],
        "name": "ct.dcm",
    }


def test_audit_tampering_is_detected(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    for i in range(3):
        audit.record("a", "view", f"obj-{i}", "r")
    audit.close()
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[2])  # delete the middle record
    with pytest.raises(ClinicalError) as e:
        verify(path)
    assert code_of(e) == "audit-tampered"
    path.write_bytes(lines[0] + lines[1].replace(b"obj-1", b"obj-9") + lines[2])
    with pytest.raises(ClinicalError):
        verify(path)


def test_audit_refuses_empty_fields(tmp_path):
    audit = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(ClinicalError):
        audit.record("", "view", "x", "r")
    with pytest.raises(ClinicalError):
        audit.record("a", "view", "x", None)  # type: ignore[arg-type]


# --- session state ---------------------------------------------------------------------------


def lab(loinc, value, effective, patient="Patient/p1"):
    return {
        "loinc": loinc,
        "value": value,
        "effective": effective,
        "patient": patient,
        "unit": "mmol/L",
    }


def ecg_announce(stream_id):
    return EcgAnnounce(stream_id, STANDARD_LEADS[3], 500).to_message()


def test_state_from_a_session_log(tmp_path):
    with SessionLog(tmp_path / "s.jsonl") as log:
        log.append(
            "dicom",
            "dr-li",
            {"sha256": "a" * 64, "name": "ct.dcm", "size": 10, "object": {"modality": "CT"}},
        )
        log.append("chat", "dr-li", {"text": "look at this"})
        log.append(
            "lab",
            "lis",
            {
                "results": [
                    lab("2823-3", 6.2, "2024-05-01T10:00:00+00:00"),
                    lab("2951-2", 140, "2024-05-01T10:00:00+00:00"),
                ]
            },
        )
        log.append("ecg-announce", "ambulance", ecg_announce(1))
        log.append("ecg-announce", "ambulance", ecg_announce(2))
        log.append("ecg-announce", "monitor", ecg_announce(1))  # same id, other device
        log.append("ecg-end", "ambulance", {"stream_id": 1})
        log.append("lab", "lis", {"results": [lab("2823-3", 5.0, "2024-05-01T12:00:00+00:00")]})
        log.append(
            "dicom", "dr-wang", {"sha256": "a" * 64, "name": "again.dcm", "size": 10, "object": {}}
        )
        state = SessionState.replay(log.read())
    snap = state.snapshot()
    assert snap["seq"] == 9
    assert [d["name"] for d in snap["dicom"]] == ["ct.dcm"]
    assert snap["dicom"][0]["sender"] == "dr-li" and snap["dicom"][0]["seq"] == 1
    assert {(x["loinc"], x["value"]) for x in snap["labs"]} == {("2823-3", 5.0), ("2951-2", 140)}
    assert [(s["sender"], s["stream_id"]) for s in snap["ecg_streams"]] == [
        ("ambulance", 2),
        ("monitor", 1),
    ]
    json.dumps(snap)


def test_older_lab_arriving_late_does_not_replace_newer():
    state = SessionState()
    entry = {"kind": "lab", "sender": "lis", "t": 1.0}
    assert state.apply(
        {**entry, "seq": 1, "body": {"results": [lab("2823-3", 5.0, "2024-05-01T12:00:00Z")]}}
    )
    assert not state.apply(
        {**entry, "seq": 2, "body": {"results": [lab("2823-3", 6.2, "2024-05-01T10:00:00Z")]}}
    )
    assert state.snapshot()["labs"][0]["value"] == 5.0
    # A correction with the same time replaces; incomparable times fall back to arrival order.
    assert state.apply(
        {**entry, "seq": 3, "body": {"results": [lab("2823-3", 5.1, "2024-05-01T12:00:00Z")]}}
    )
    assert state.apply({**entry, "seq": 4, "body": {"results": [lab("2823-3", 5.2, "2024-05")]}})
    assert state.snapshot()["labs"][0]["value"] == 5.2


def test_labs_of_different_patients_are_kept_apart():
    state = SessionState()
    body = {
        "results": [lab("2823-3", 5.0, None, "Patient/a"), lab("2823-3", 6.0, None, "Patient/b")]
    }
    state.apply({"seq": 1, "t": 0.0, "kind": "lab", "sender": "lis", "body": body})
    assert len(state.snapshot()["labs"]) == 2


def test_replaying_an_overlap_is_idempotent():
    state = SessionState()
    e = {"seq": 1, "t": 0.0, "kind": "ecg-announce", "sender": "amb", "body": ecg_announce(1)}
    end = {"seq": 2, "t": 0.1, "kind": "ecg-end", "sender": "amb", "body": {"stream_id": 1}}
    assert state.apply(e) and state.apply(end)
    assert not state.apply(e)  # seq 1 again: ignored, the stream stays ended
    assert state.snapshot()["ecg_streams"] == []


def test_malformed_entries():
    state = SessionState()
    for bad in (
        {"seq": 1},
        {"seq": 1, "t": 0, "kind": "lab", "sender": "x", "body": {}},
        {"seq": 2, "t": 0, "kind": "dicom", "sender": "x", "body": None},
    ):
        with pytest.raises(ClinicalError) as e:
            state.apply(bad)
        assert code_of(e) == "state-entry"
    assert state.seq == 0  # a refused entry is not counted as applied
