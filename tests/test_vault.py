"""The vault: envelope keys and the chunked AES-256-GCM stream, through real files."""

from __future__ import annotations

import base64
import io
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from vault import EncryptedReader, EncryptedWriter, KeyRing, VaultError, rewrap_file
from vault import stream_format as fmt

PLAIN = os.urandom(200_000)
ROOT = Path(__file__).resolve().parents[1]


def write(path, ring, data=PLAIN, chunk=4096, close=True, flush_every=None):
    key, wrapped = ring.new_data_key()
    w = EncryptedWriter(path, key, wrapped, chunk_size=chunk, fsync_interval=0)
    step = flush_every or len(data)
    for i in range(0, len(data), step):
        w.write(data[i:i + step])
        if flush_every:
            w.flush()
    if close:
        w.close()
    return w


@pytest.fixture
def ring():
    return KeyRing(os.urandom(32))


def test_round_trip_and_random_access(tmp_path, ring):
    path = tmp_path / "a.enc"
    write(path, ring, flush_every=3000)
    with EncryptedReader(path, ring) as r:
        assert r.complete and r.size == len(PLAIN)
        assert b"".join(r) == PLAIN
        for offset, length in [(0, 10), (4095, 2), (2999, 3002), (len(PLAIN) - 5, 100), (len(PLAIN), 4)]:
            assert r.read_at(offset, length) == PLAIN[offset:offset + length]
        r.seek(123_456)
        assert io.BufferedReader(r).read(70_000) == PLAIN[123_456:193_456]
    raw = path.read_bytes()
    assert PLAIN[:64] not in raw and PLAIN[100_000:100_032] not in raw


def test_flipped_bit_anywhere_in_a_chunk_is_refused(tmp_path, ring):
    path = tmp_path / "a.enc"
    write(path, ring)
    raw = bytearray(path.read_bytes())
    for at in (fmt.HEADER_BYTES + fmt.RECORD.size + 5, len(raw) - 3):
        bad = bytearray(raw)
        bad[at] ^= 0x40
        path.write_bytes(bad)
        with EncryptedReader(path, ring) as r, pytest.raises(VaultError) as err:
            b"".join(r)
        assert err.value.code == "tampered"


def test_swapped_chunks_and_reflagged_final_are_refused(tmp_path, ring):
    path = tmp_path / "a.enc"
    write(path, ring, data=b"x" * 4096 * 3)
    raw = path.read_bytes()
    rec = fmt.RECORD.size + 4096 + fmt.TAG_BYTES
    body = raw[fmt.HEADER_BYTES:]
    swapped = raw[:fmt.HEADER_BYTES] + body[rec:2 * rec] + body[:rec] + body[2 * rec:]
    path.write_bytes(swapped)
    with EncryptedReader(path, ring) as r, pytest.raises(VaultError):
        r.chunk(0)
    # Cutting the final chunk off and marking the last data chunk final fails authentication.
    cut = bytearray(raw[:fmt.HEADER_BYTES + 3 * rec])
    cut[fmt.HEADER_BYTES + 2 * rec + 4] = fmt.FINAL
    path.write_bytes(bytes(cut))
    with EncryptedReader(path, ring) as r, pytest.raises(VaultError):
        r.chunk(2)


def test_truncated_tail_reads_up_to_the_last_complete_chunk(tmp_path, ring):
    path = tmp_path / "a.enc"
    w = write(path, ring, close=False, flush_every=1000)  # a crashed writer: never closed
    assert not w.closed
    raw = path.read_bytes()
    path.write_bytes(raw[:-7])  # the last record torn mid-way
    with EncryptedReader(path, ring) as r:
        assert not r.complete
        data = b"".join(r)
    assert data == PLAIN[:len(data)] and len(PLAIN) - 2000 < len(data) < len(PLAIN)
    # Cut exactly at a record boundary: whole, but not closed.
    path.write_bytes(raw)
    with EncryptedReader(path, ring) as r:
        assert not r.complete and b"".join(r) == PLAIN


def test_reader_follows_a_live_writer(tmp_path, ring):
    path = tmp_path / "a.enc"
    key, wrapped = ring.new_data_key()
    w = EncryptedWriter(path, key, wrapped, chunk_size=1024, fsync_interval=None)
    w.write(b"a" * 100)
    r = EncryptedReader(path, ring)
    assert r.size == 0  # buffered, not yet sealed
    w.flush()
    r.refresh()
    assert r.read_at(0, 1000) == b"a" * 100
    w.write(b"b" * 50)
    w.close()
    r.refresh()
    assert r.complete and r.read_at(0, 1000) == b"a" * 100 + b"b" * 50
    r.close()


def test_wrong_key_is_refused(tmp_path, ring):
    path = tmp_path / "a.enc"
    write(path, ring)
    with pytest.raises(VaultError) as err:
        EncryptedReader(path, KeyRing(os.urandom(32)))
    assert err.value.code == "wrong-key"
    (tmp_path / "plain").write_bytes(b"\x1a\x45\xdf\xa3" + bytes(100))
    with pytest.raises(VaultError) as err:
        EncryptedReader(tmp_path / "plain", ring)
    assert err.value.code == "format"


def test_rotation_rewraps_only_the_data_key(tmp_path, ring):
    path = tmp_path / "a.enc"
    write(path, ring)
    before = path.read_bytes()
    new = KeyRing(os.urandom(32), previous=[ring._master])
    assert rewrap_file(path, new) is True
    after = path.read_bytes()
    assert after[fmt.HEADER_BYTES:] == before[fmt.HEADER_BYTES:]  # no chunk rewritten
    assert after[fmt.WRAPPED_AT:fmt.WRAPPED_AT + 8] == new.key_id
    with EncryptedReader(path, KeyRing(new._master)) as r:  # the old key is no longer needed
        assert b"".join(r) == PLAIN
    with pytest.raises(VaultError):
        EncryptedReader(path, ring)
    assert rewrap_file(path, new) is False


def test_key_file_is_created_once_0600_and_logged(tmp_path, caplog):
    path = tmp_path / "keys" / "master.key"
    with caplog.at_level(logging.WARNING, "telemed.vault"):
        first = KeyRing.load(None, path)
        second = KeyRing.load(None, path)
    assert first.key_id == second.key_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sum("master key file" in r.getMessage() for r in caplog.records) == 1
    assert str(path.read_text().strip()) not in caplog.text and "KeyRing(key_id=" in repr(first)
    configured = base64.b64encode(os.urandom(32)).decode()
    assert KeyRing.load(configured, tmp_path / "unused.key").key_id != first.key_id
    assert not (tmp_path / "unused.key").exists()
    with pytest.raises(ValueError):
        KeyRing.load("too-short", path)


def test_full_disk_leaves_the_sealed_part_readable(tmp_path, ring, monkeypatch):
    """A failed append cuts the file back to a record boundary (simulated with a closed fd
    standing in for ENOSPC; the real full disk runs in the recorder tests on a tmpfs)."""
    path = tmp_path / "a.enc"
    key, wrapped = ring.new_data_key()
    w = EncryptedWriter(path, key, wrapped, chunk_size=1024, fsync_interval=0)
    w.write(b"z" * 2048)
    real_write = os.write
    calls = []

    def failing_write(fd, data):
        if fd == w._fd:
            calls.append(1)
            real_write(fd, bytes(data)[:7])  # part of a record reaches the disk, then ENOSPC
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(OSError):
        w.write(b"y" * 1024)
    monkeypatch.undo()
    assert w.closed and calls
    with pytest.raises(VaultError):
        w.write(b"more")
    with EncryptedReader(path, ring) as r:
        assert not r.complete and b"".join(r) == b"z" * 2048


def test_a_crashed_stream_is_resumed_and_closed_whole(tmp_path, ring):
    path = tmp_path / "a.enc"
    write(path, ring, close=False, flush_every=1000)
    raw = path.read_bytes()
    path.write_bytes(raw[:-7])  # torn last record
    with EncryptedReader(path, ring) as r:
        kept = b"".join(r)
    w = EncryptedWriter.resume(path, ring)
    w.write(b"after the crash")
    w.close()
    with EncryptedReader(path, ring) as r:
        assert r.complete and b"".join(r) == kept + b"after the crash"
    with pytest.raises(VaultError):
        EncryptedWriter.resume(path, ring)  # already whole


def test_the_cli_rewraps_a_data_directory_under_a_rotated_key(tmp_path, ring):
    data = tmp_path / "data"
    (data / "recordings" / "x").mkdir(parents=True)
    (data / "keys").mkdir()
    old_key = base64.b64encode(ring._master).decode()
    (data / "keys" / "master.key").write_text(old_key + "\n")
    for name in ("recordings/x/a.webm.enc", "b.enc"):
        write(data / name, ring)
    (data / "audit.jsonl").write_text("{}\n")  # not a vault file: left alone
    new_key = base64.b64encode(os.urandom(32)).decode()
    env = {**os.environ, "TELEMED_MASTER_KEY": new_key, "TELEMED_PREVIOUS_MASTER_KEYS": old_key}
    done = subprocess.run([sys.executable, "-m", "signaling", "vault", "rewrap", "--data-dir", str(data)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "re-wrapped 2 of 2" in done.stdout and old_key not in done.stdout + done.stderr
    only_new = KeyRing.load(new_key, tmp_path / "unused")
    for name in ("recordings/x/a.webm.enc", "b.enc"):
        with EncryptedReader(data / name, only_new) as r:
            assert b"".join(r) == PLAIN
    assert (data / "audit.jsonl").read_text() == "{}\n"
