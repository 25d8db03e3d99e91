"""DICOM chunked transfer: announce validation, chunk framing, reassembly, limits."""

import hashlib
import random
from io import BytesIO

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from clinical.dicom_transfer import (
    CHUNK_SIZE,
    DicomAssembler,
    DicomTransfers,
    TransferAnnounce,
    iter_chunk_frames,
    pack_chunk,
    unpack_chunk,
)
from clinical.dicom_validate import read_dicom
from clinical.errors import ClinicalError

PAYLOAD = bytes(range(256)) * 1000  # 256000 bytes -> 4 chunks of 64 KiB


def announce_msg(data: bytes = PAYLOAD, **overrides) -> dict:
    msg = TransferAnnounce.for_data("t-1", "ct.dcm", data).to_message()
    msg.update(overrides)
    return msg


def chunks(data: bytes = PAYLOAD, size: int = CHUNK_SIZE) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def code_of(excinfo) -> str:
    return excinfo.value.code


# --- wire format -----------------------------------------------------------------------


def test_chunk_frame_round_trip():
    frame = pack_chunk("t-1", 7, b"abc")
    assert frame[:2] == b"DC" and frame[2] == 1 and frame[3] == 3
    assert unpack_chunk(frame) == ("t-1", 7, b"abc")
    assert unpack_chunk(memoryview(frame)) == ("t-1", 7, b"abc")


def test_full_size_chunk_frame_round_trip():
    payload = b"\xab" * CHUNK_SIZE
    assert unpack_chunk(pack_chunk("x", 0, payload)) == ("x", 0, payload)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"DC",
        b"XX\x01\x01a\x00\x00\x00\x00p",  # bad magic
        b"DC\x02\x01a\x00\x00\x00\x00p",  # unknown version
        b"DC\x01\x01a\x00\x00\x00\x00",  # no payload
        b"DC\x01\x05ab",  # id longer than the frame
        b"DC\x01\x03a/b\x00\x00\x00\x00p",  # id outside the alphabet
        b"DC\x01\x02\xff\xfe\x00\x00\x00\x00p",  # id not ASCII
        b"DC\x01\x00\x00\x00\x00\x00p",  # empty id
    ],
)
def test_malformed_chunk_frames(frame):
    with pytest.raises(ClinicalError):
        unpack_chunk(frame)


def test_oversized_chunk_frame():
    frame = pack_chunk("t-1", 0, b"x" * CHUNK_SIZE) + b"y"
    with pytest.raises(ClinicalError) as e:
        unpack_chunk(frame)
    assert code_of(e) == "dicom-chunk-size"
    with pytest.raises(ClinicalError) as e:
        pack_chunk("t-1", 0, b"x" * (CHUNK_SIZE + 1))
    assert code_of(e) == "dicom-chunk-size"


@pytest.mark.parametrize(
    "tid,index,payload", [("bad id", 0, b"x"), ("t", -1, b"x"), ("t", 2**32, b"x"), ("t", 0, b"")]
)
def test_pack_chunk_refuses_bad_arguments(tid, index, payload):
    with pytest.raises(ClinicalError):
        pack_chunk(tid, index, payload)


# --- announce -----------------------------------------------------------------------


def test_announce_round_trip():
    a = TransferAnnounce.from_message(announce_msg())
    assert (a.size, a.chunk_count, a.chunk_size) == (len(PAYLOAD), 4, CHUNK_SIZE)
    assert a.sha256 == hashlib.sha256(PAYLOAD).hexdigest()


def test_announce_defaults_chunk_size_and_accepts_upper_hex():
    msg = announce_msg()
    del msg["chunk_size"], msg["type"]
    msg["sha256"] = msg["sha256"].upper()
    a = TransferAnnounce.from_message(msg)
    assert a.chunk_size == CHUNK_SIZE and a.sha256 == hashlib.sha256(PAYLOAD).hexdigest()


@pytest.mark.parametrize(
    "overrides",
    [
        {"type": "dicom-complete"},
        {"transfer_id": ""},
        {"transfer_id": "../x"},
        {"name": "../../etc/passwd"},
        {"name": ".."},
        {"name": "a\nb"},
        {"name": ""},
        {"size": 0},
        {"size": "10"},
        {"size": True},
        {"sha256": "abc"},
        {"sha256": "g" * 64},
        {"chunk_count": 3},
        {"chunk_count": 5},
        {"chunk_size": 65537},
        {"chunk_size": 100},
        {"extra": 1},
    ],
)
def test_bad_announce(overrides):
    with pytest.raises(ClinicalError) as e:
        TransferAnnounce.from_message(announce_msg(**overrides))
    assert code_of(e) == "dicom-announce"


def test_announce_must_be_an_object():
    with pytest.raises(ClinicalError):
        TransferAnnounce.from_message(["dicom-announce"])


def test_announce_over_max_size():
    with pytest.raises(ClinicalError) as e:
        TransferAnnounce.from_message(announce_msg(), max_size=len(PAYLOAD) - 1)
    assert code_of(e) == "dicom-too-large"
    big = {"size": 64 * 1024 * 1024 + 1, "chunk_count": 1025}
    with pytest.raises(ClinicalError) as e:
        TransferAnnounce.from_message(announce_msg(**big))
    assert code_of(e) == "dicom-too-large"


# --- assembler ----------------------------------------------------------------------


def test_out_of_order_and_duplicate_chunks():
    asm = DicomAssembler.from_message(announce_msg())
    parts = chunks()
    for index in (3, 1, 0):
        assert asm.add(index, parts[index]) is True
    assert asm.add(1, parts[1]) is False  # identical retransmit: ignored
    assert asm.missing() == [2] and not asm.done
    asm.add(2, parts[2])
    assert asm.done and asm.received_bytes == len(PAYLOAD)
    assert asm.complete() == PAYLOAD


def test_conflicting_duplicate():
    asm = DicomAssembler.from_message(announce_msg())
    asm.add(0, chunks()[0])
    with pytest.raises(ClinicalError) as e:
        asm.add(0, b"\0" * CHUNK_SIZE)
    assert code_of(e) == "dicom-chunk-conflict"


@pytest.mark.parametrize("index", [-1, 4, 2**32 - 1])
def test_chunk_index_out_of_range(index):
    asm = DicomAssembler.from_message(announce_msg())
    with pytest.raises(ClinicalError) as e:
        asm.add(index, b"x")
    assert code_of(e) == "dicom-chunk-index"


def test_oversized_chunk_payload():
    asm = DicomAssembler.from_message(announce_msg())
    with pytest.raises(ClinicalError) as e:
        asm.add(0, b"x" * (CHUNK_SIZE + 1))
    assert code_of(e) == "dicom-chunk-size"


def test_short_middle_chunk():
    asm = DicomAssembler.from_message(announce_msg())
    with pytest.raises(ClinicalError) as e:
        asm.add(1, b"x" * 100)
    assert code_of(e) == "dicom-chunk-size"


def test_overflow_beyond_announced_size():
    # Announced 10 bytes fewer than sent: the last chunk overflows the object.
    short = TransferAnnounce.for_data("t-1", "x.dcm", PAYLOAD[:-10])
    asm = DicomAssembler(short)
    with pytest.raises(ClinicalError) as e:
        asm.add(3, chunks()[3])
    assert code_of(e) == "dicom-overflow"


def test_wrong_size_announced_larger():
    wrong = TransferAnnounce.for_data("t-1", "x.dcm", PAYLOAD + b"0123456789")
    asm = DicomAssembler(wrong)
    parts = chunks()
    for i in range(3):
        asm.add(i, parts[i])
    with pytest.raises(ClinicalError) as e:
        asm.add(3, parts[3])
    assert code_of(e) == "dicom-chunk-size"
    with pytest.raises(ClinicalError) as e:
        asm.complete()
    assert code_of(e) == "dicom-incomplete"


def test_wrong_sha256():
    msg = announce_msg(sha256=hashlib.sha256(b"something else").hexdigest())
    asm = DicomAssembler.from_message(msg)
    for i, part in enumerate(chunks()):
        asm.add(i, part)
    with pytest.raises(ClinicalError) as e:
        asm.complete()
    assert code_of(e) == "dicom-sha256"


def test_small_chunk_size():
    data = PAYLOAD[:5000]
    a = TransferAnnounce.for_data("s", "s.dcm", data, chunk_size=1024)
    assert a.chunk_count == 5
    asm = DicomAssembler.from_message(a.to_message())
    for frame in iter_chunk_frames(a, data):
        _, index, payload = unpack_chunk(frame)
        asm.add(index, payload)
    assert asm.complete() == data


# --- DicomTransfers (one sender) ------------------------------------------------------


def test_transfers_route_frames_and_finish_on_complete():
    t = DicomTransfers()
    a = t.announce(announce_msg())
    frames = list(iter_chunk_frames(a, PAYLOAD))
    assert all(t.add_frame(f) is None for f in frames)
    received = t.complete({"type": "dicom-complete", "transfer_id": "t-1"})
    assert received is not None and received.data == PAYLOAD and received.announce == a
    assert t.pending() == []


def test_complete_may_overtake_the_last_chunk():
    t = DicomTransfers()
    a = t.announce(announce_msg())
    frames = list(iter_chunk_frames(a, PAYLOAD))
    for f in frames[:-1]:
        t.add_frame(f)
    assert t.complete({"type": "dicom-complete", "transfer_id": "t-1"}) is None
    received = t.add_frame(frames[-1])
    assert received is not None and received.data == PAYLOAD


def test_transfers_errors():
    t = DicomTransfers(max_active=1)
    with pytest.raises(ClinicalError) as e:
        t.add_frame(pack_chunk("nope", 0, b"x"))
    assert code_of(e) == "dicom-unknown-transfer"
    t.announce(announce_msg())
    with pytest.raises(ClinicalError) as e:
        t.announce(announce_msg())
    assert code_of(e) == "dicom-announce"
    with pytest.raises(ClinicalError) as e:
        t.announce(announce_msg(transfer_id="t-2"))
    assert code_of(e) == "dicom-busy"
    with pytest.raises(ClinicalError) as e:
        t.complete({"type": "dicom-complete", "transfer_id": "t-1", "x": 1})
    assert code_of(e) == "dicom-complete"


def test_bad_chunk_aborts_the_transfer():
    t = DicomTransfers()
    t.announce(announce_msg())
    with pytest.raises(ClinicalError):
        t.add_frame(pack_chunk("t-1", 9, b"x"))
    assert t.pending() == []
    with pytest.raises(ClinicalError) as e:
        t.add_frame(pack_chunk("t-1", 0, chunks()[0]))
    assert code_of(e) == "dicom-unknown-transfer"


def test_sha_mismatch_on_complete_forgets_the_transfer():
    t = DicomTransfers()
    t.announce(announce_msg(sha256="0" * 64))
    for f in iter_chunk_frames(TransferAnnounce.from_message(announce_msg()), PAYLOAD):
        t.add_frame(f)
    with pytest.raises(ClinicalError) as e:
        t.complete({"transfer_id": "t-1"})
    assert code_of(e) == "dicom-sha256"
    assert t.pending() == []


# --- end to end: an 8 MiB DICOM in 64 KiB chunks --------------------------------------


def big_ct() -> bytes:
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:2048, 0:2048]
    body = ((x - 1024) ** 2 + (y - 1024) ** 2 < 900**2) * 1024
    pixels = (body + rng.integers(0, 64, size=body.shape)).astype(np.int16)
    ds.set_pixel_data(pixels, "MONOCHROME2", 16)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_eight_mib_dicom_through_the_assembler():
    data = big_ct()
    assert len(data) > 8 * 1024 * 1024
    t = DicomTransfers()
    a = t.announce(TransferAnnounce.for_data("big", "big-ct.dcm", data).to_message())
    frames = list(iter_chunk_frames(a, data))
    assert len(frames) == a.chunk_count == -(-len(data) // CHUNK_SIZE)
    assert all(len(unpack_chunk(f)[2]) <= CHUNK_SIZE for f in frames)
    random.Random(3).shuffle(frames)
    frames.insert(10, frames[20])  # a retransmit
    for f in frames:
        assert t.add_frame(f) is None
    received = t.complete({"type": "dicom-complete", "transfer_id": "big"})
    assert received is not None and received.data == data
    obj = read_dicom(received.data)
    assert (obj.rows, obj.columns) == (2048, 2048)
