"""ECG frame format, stream consistency, and the sample sources (synthetic, DICOM, WFDB)."""

import struct

import numpy as np
import pytest
import wfdb
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.waveforms.numpy_handler import generate_multiplex

from clinical.ecg import (
    STANDARD_LEADS,
    EcgAnnounce,
    EcgFrame,
    EcgStream,
    Gap,
    iter_frames,
    pack_frame,
    parse_end,
    unpack_frame,
)
from clinical.ecg_sources import ecg_from_dicom_waveform, ecg_from_wfdb, synthetic_ecg
from clinical.errors import ClinicalError

HEADER = struct.Struct("<2sBBIIQHH")


def code_of(excinfo) -> str:
    return excinfo.value.code


def announce(lead_count=3, **extra) -> dict:
    msg = {
        "type": "ecg-announce",
        "stream_id": 7,
        "leads": list(STANDARD_LEADS[lead_count]),
        "sample_rate": 500,
    }
    msg.update(extra)
    return msg


def frame(seq=0, first=0, n=50, leads=3, rate=500, stream_id=7) -> bytes:
    samples = np.arange(n * leads, dtype=np.int16).reshape(n, leads)
    return pack_frame(stream_id, seq, first, rate, samples)


# --- frame format ---------------------------------------------------------------------


def test_round_trip_and_layout():
    samples = np.array([[1, -2, 3], [4, -5, 6]], dtype=np.int16)
    data = pack_frame(9, 41, 2**40, 500, samples)
    assert len(data) == 24 + 2 * 3 * 2
    assert HEADER.unpack_from(data) == (b"EC", 1, 3, 9, 41, 2**40, 500, 2)
    # sample-major: s0.L0 s0.L1 s0.L2 s1.L0 ...
    assert struct.unpack_from("<6h", data, 24) == (1, -2, 3, 4, -5, 6)
    f = unpack_frame(data)
    assert isinstance(f, EcgFrame)
    assert (f.stream_id, f.seq, f.first_sample, f.sample_rate) == (9, 41, 2**40, 500)
    assert (f.lead_count, f.samples_per_lead) == (3, 2)
    assert np.array_equal(f.samples, samples)


def test_largest_frame_fits_64k():
    n = (65536 - 24) // (2 * 12)
    f = unpack_frame(pack_frame(1, 0, 0, 1000, np.zeros((n, 12), np.int16)))
    assert f.samples_per_lead == n
    with pytest.raises(ClinicalError) as e:
        pack_frame(1, 0, 0, 1000, np.zeros((n + 1, 12), np.int16))
    assert code_of(e) == "ecg-frame-length"


@pytest.mark.parametrize("delta", [-1, 1, -2, 100])
def test_wrong_frame_length(delta):
    data = frame()
    data = data[:delta] if delta < 0 else data + b"\0" * delta
    with pytest.raises(ClinicalError) as e:
        unpack_frame(data)
    assert code_of(e) == "ecg-frame-length"


@pytest.mark.parametrize("data", [b"", b"EC", b"EC\x01\x03" + b"\0" * 10])
def test_short_frames(data):
    with pytest.raises(ClinicalError) as e:
        unpack_frame(data)
    assert code_of(e) == "ecg-frame-length"


def header(**fields) -> bytes:
    values = {
        "magic": b"EC",
        "version": 1,
        "leads": 3,
        "stream": 7,
        "seq": 0,
        "first": 0,
        "rate": 500,
        "n": 1,
    }
    values.update(fields)
    head = HEADER.pack(*values.values())
    return head + b"\0\0" * values["leads"] * values["n"]


@pytest.mark.parametrize(
    "fields,code",
    [
        ({"magic": b"XX"}, "ecg-frame"),
        ({"version": 2}, "ecg-frame"),
        ({"leads": 0}, "ecg-lead-count"),
        ({"leads": 2}, "ecg-lead-count"),
        ({"leads": 13}, "ecg-lead-count"),
        ({"rate": 249}, "ecg-sample-rate"),
        ({"rate": 1001}, "ecg-sample-rate"),
        ({"rate": 0}, "ecg-sample-rate"),
        ({"n": 0}, "ecg-frame"),
        ({"leads": 12, "n": 2800}, "ecg-frame-length"),
    ],
)
def test_bad_headers(fields, code):
    with pytest.raises(ClinicalError) as e:
        unpack_frame(header(**fields))
    assert code_of(e) == code


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros((10,), np.int16),  # 1-D
        np.zeros((10, 2), np.int16),  # 2 leads
        np.zeros((10, 3), np.float32),  # not integers
        np.full((10, 3), 40000, np.int32),  # beyond int16
        np.zeros((0, 3), np.int16),  # empty
    ],
)
def test_pack_refuses_bad_samples(samples):
    with pytest.raises(ClinicalError):
        pack_frame(1, 0, 0, 500, samples)


def test_pack_refuses_out_of_range_header_fields():
    s = np.zeros((1, 1), np.int16)
    for kwargs in ({"stream_id": -1}, {"seq": 2**32}, {"first_sample": 2**64}):
        args = {
            "stream_id": 1,
            "seq": 0,
            "first_sample": 0,
            "sample_rate": 500,
            "samples": s,
        } | kwargs
        with pytest.raises(ClinicalError):
            pack_frame(**args)


def test_iter_frames_cuts_consecutively():
    samples = synthetic_ecg(3, 500, 1.0)
    frames = [unpack_frame(f) for f in iter_frames(5, 500, samples, 120, first_seq=10)]
    assert [f.seq for f in frames] == [10, 11, 12, 13, 14]
    assert [f.first_sample for f in frames] == [0, 120, 240, 360, 480]
    assert np.array_equal(np.concatenate([f.samples for f in frames]), samples)


# --- announce and stream --------------------------------------------------------------


def test_announce_round_trip():
    a = EcgAnnounce.from_message(announce(lead_count=12, uv_per_lsb=1.25))
    assert a.leads == STANDARD_LEADS[12] and a.uv_per_lsb == 1.25
    assert EcgAnnounce.from_message(a.to_message()) == a
    assert EcgAnnounce.from_message(announce()).uv_per_lsb == 1.0


@pytest.mark.parametrize(
    "overrides",
    [
        {"type": "ecg-end"},
        {"stream_id": -1},
        {"stream_id": "7"},
        {"stream_id": 2**32},
        {"sample_rate": 100},
        {"sample_rate": 500.0},
        {"leads": ["I", "II"]},
        {"leads": "I,II,III"},
        {"leads": ["I", "I", "II"]},
        {"leads": ["I", "II", "III; DROP"]},
        {"leads": ["I", "II", 3]},
        {"uv_per_lsb": 0},
        {"uv_per_lsb": float("inf")},
        {"uv_per_lsb": True},
        {"extra": 1},
    ],
)
def test_bad_announce(overrides):
    with pytest.raises(ClinicalError) as e:
        EcgAnnounce.from_message(announce(**overrides))
    assert code_of(e) == "ecg-announce"


def test_missing_fields_in_announce():
    for key in ("stream_id", "leads", "sample_rate"):
        msg = announce()
        del msg[key]
        with pytest.raises(ClinicalError):
            EcgAnnounce.from_message(msg)
    with pytest.raises(ClinicalError):
        EcgAnnounce.from_message("ecg-announce")


def test_parse_end():
    assert parse_end({"type": "ecg-end", "stream_id": 7}) == 7
    for bad in (
        {"type": "ecg-end"},
        {"type": "ecg-announce", "stream_id": 7},
        {"stream_id": 7, "x": 1},
    ):
        with pytest.raises(ClinicalError):
            parse_end(bad)


def test_contiguous_stream_has_no_gaps():
    stream = EcgStream.from_message(announce())
    for k in range(10):
        assert stream.accept(frame(seq=k, first=50 * k)) == []
    assert stream.stats() == {"frames": 10, "gaps": 0, "late": 0}


def test_stream_may_start_anywhere():
    stream = EcgStream.from_message(announce())
    assert stream.accept(frame(seq=1000, first=123456)) == []


@pytest.mark.parametrize(
    "bad,code",
    [
        (frame(stream_id=8), "ecg-inconsistent"),
        (frame(leads=12), "ecg-inconsistent"),
        (frame(leads=1), "ecg-inconsistent"),
        (frame(rate=1000), "ecg-inconsistent"),
        (b"EC\x01", "ecg-frame-length"),
    ],
)
def test_inconsistent_frames_are_refused(bad, code):
    stream = EcgStream.from_message(announce())
    stream.accept(frame(seq=0))
    with pytest.raises(ClinicalError) as e:
        stream.accept(bad)
    assert code_of(e) == code
    assert stream.frames == 1
    assert stream.accept(frame(seq=1, first=50)) == []  # the stream is not disturbed


def test_missing_frames_are_reported_not_refused():
    stream = EcgStream.from_message(announce())
    stream.accept(frame(seq=0, first=0))
    assert stream.accept(frame(seq=3, first=150)) == [Gap("seq", 1, 3)]
    assert stream.accept(frame(seq=4, first=200)) == []
    assert stream.stats() == {"frames": 3, "gaps": 1, "late": 0}


def test_sample_discontinuity_is_reported():
    stream = EcgStream.from_message(announce())
    stream.accept(frame(seq=0, first=0))
    assert stream.accept(frame(seq=1, first=70)) == [Gap("samples", 50, 70)]
    assert stream.accept(frame(seq=2, first=60)) == [Gap("samples", 120, 60)]
    assert stream.gaps == 2


def test_late_frame_is_reported_and_does_not_rewind():
    stream = EcgStream.from_message(announce())
    stream.accept(frame(seq=0, first=0))
    stream.accept(frame(seq=2, first=100))
    assert stream.accept(frame(seq=1, first=50)) == [Gap("late", 3, 1)]
    assert stream.accept(frame(seq=3, first=150)) == []
    assert stream.stats() == {"frames": 4, "gaps": 1, "late": 1}


def test_ended_stream_refuses_frames():
    stream = EcgStream.from_message(announce())
    stream.end()
    with pytest.raises(ClinicalError) as e:
        stream.accept(frame())
    assert code_of(e) == "ecg-ended"


# --- sources -------------------------------------------------------------------------


def test_synthetic_ecg_is_deterministic_and_plausible():
    a = synthetic_ecg(12, 500, 10.0)
    assert a.shape == (5000, 12) and a.dtype == np.int16
    assert np.array_equal(a, synthetic_ecg(12, 500, 10.0))
    lead_ii = a[:, 1].astype(float)
    # R peaks around 1.1 mV, about 72 per minute -> 12 beats in 10 s
    peaks = [
        i
        for i in range(1, len(lead_ii) - 1)
        if lead_ii[i] > 800 and lead_ii[i] >= lead_ii[i - 1] and lead_ii[i] > lead_ii[i + 1]
    ]
    assert len(peaks) == 12
    assert 900 < lead_ii.max() < 1400
    # Einthoven: III = II - I (rounding aside)
    assert np.abs(a[:, 2].astype(int) - (a[:, 1].astype(int) - a[:, 0])).max() <= 1
    # aVR mostly negative QRS
    assert a[:, 3].min() < -500


def test_synthetic_ecg_lead_counts_and_limits():
    assert synthetic_ecg(1, 250, 2).shape == (500, 1)
    assert synthetic_ecg(3, 1000, 0.5).shape == (500, 3)
    assert synthetic_ecg(3, 500, 3, heart_rate=150).shape == (1500, 3)
    for args in ((2, 500, 1), (12, 0, 1), (12, 500, 0), (12, 500, 1, 10)):
        with pytest.raises(ClinicalError):
            synthetic_ecg(*args)


def test_synthetic_ecg_streams_through_the_validator():
    samples = synthetic_ecg(12, 500, 2.0)
    stream = EcgStream.from_message(announce(lead_count=12))
    for data in iter_frames(7, 500, samples, 100):
        assert stream.accept(data) == []
    assert stream.frames == 10


def test_from_dicom_waveform_is_lossless():
    ds = dcmread(get_testdata_file("waveform_ecg.dcm"))
    rec = ecg_from_dicom_waveform(ds)
    assert rec.leads == STANDARD_LEADS[12]
    assert rec.sample_rate == 1000 and rec.uv_per_lsb == 1.25
    raw = next(generate_multiplex(ds, as_raw=True))
    assert np.array_equal(rec.samples, raw)
    # The median-beat group too, and the recording streams through the validator.
    assert ecg_from_dicom_waveform(ds, group=1).samples.shape == (1200, 12)
    stream = EcgStream(rec.announce(3))
    assert stream.announce.to_message()["uv_per_lsb"] == 1.25
    assert all(stream.accept(f) == [] for f in rec.frames(3, 250))
    assert stream.frames == 40


def test_from_dicom_waveform_errors():
    ds = dcmread(get_testdata_file("waveform_ecg.dcm"))
    with pytest.raises(ClinicalError):
        ecg_from_dicom_waveform(ds, group=2)
    with pytest.raises(ClinicalError):
        ecg_from_dicom_waveform(dcmread(get_testdata_file("CT_small.dcm")))


def test_from_wfdb_local_record(tmp_path):
    fs = 360
    mv = synthetic_ecg(3, fs, 5.0).astype(float) / 1000.0
    wfdb.wrsamp(
        "rec1",
        fs=fs,
        units=["mV"] * 3,
        sig_name=["I", "II", "III"],
        p_signal=mv,
        fmt=["16"] * 3,
        adc_gain=[200.0] * 3,
        baseline=[0] * 3,
        write_dir=str(tmp_path),
    )
    rec = ecg_from_wfdb(tmp_path / "rec1")
    assert rec.leads == ("I", "II", "III") and rec.sample_rate == fs
    assert rec.uv_per_lsb == pytest.approx(5.0)  # 1 mV / 200 units
    assert rec.samples.shape == (1800, 3)
    assert np.abs(rec.samples * rec.uv_per_lsb - mv * 1000).max() <= 2.5 + 1e-9
    one = rec.pick("II")
    assert one.leads == ("II",) and np.array_equal(one.samples[:, 0], rec.samples[:, 1])
    with pytest.raises(ClinicalError):
        rec.pick("V7")


def test_from_wfdb_missing_record(tmp_path):
    with pytest.raises(ClinicalError) as e:
        ecg_from_wfdb(tmp_path / "nothing")
    assert code_of(e) == "ecg-source"
