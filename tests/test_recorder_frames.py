"""Depacketizing and assembling frames, then muxing them into an encrypted file: packets
come from aiortc's real VP8/H264 packetizers; the result must decode with PyAV."""

from __future__ import annotations

import fractions
import os
import random

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from recorder.depacketizer import DEPACKETIZERS
from recorder.frame_assembler import FrameAssembler
from recorder.track_file import TrackFile
from sfu.keyframe import DETECTORS
from sfu.rtp_packet import RtpPacket
from vault import EncryptedReader, KeyRing

ENCODERS = {"video/vp8": Vp8Encoder, "video/h264": H264Encoder}


def packets(mime: str, sizes: list[tuple[int, int]], keyframes=(0,), noise: bool = False) -> list[RtpPacket]:
    encoder = ENCODERS[mime]()
    is_key = DETECTORS[mime]
    out, seq = [], 1000
    rng = np.random.default_rng(7)
    for i, (w, h) in enumerate(sizes):
        image = rng.integers(0, 255, (h, w, 3), np.uint8) if noise else np.full((h, w, 3), i * 5 % 255, np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=i in keyframes)
        for j, payload in enumerate(payloads):
            packet = RtpPacket(96, int(j == len(payloads) - 1), seq & 0xFFFF, timestamp, 1, payload)
            packet.keyframe = is_key(payload)
            out.append(packet)
            seq += 1
    return out


def record(tmp_path, mime: str, stream: list[RtpPacket], drain_at: float | None = None):
    ring = KeyRing(os.urandom(32))
    gaps = []
    assembler = FrameAssembler(DEPACKETIZERS[mime](), lambda: gaps.append(1))
    path = tmp_path / "track.enc"
    file = TrackFile(path, *ring.new_data_key(), mime)
    first = None
    for i, packet in enumerate(stream):
        for frame in assembler.push(packet, now=i * 0.001):
            first = frame.timestamp if first is None else first
            file.write(frame.data, (frame.timestamp - first) // 90, frame.keyframe)
    for frame in assembler.drain(now=1e9):
        file.write(frame.data, (frame.timestamp - first) // 90, frame.keyframe)
    file.close()
    with EncryptedReader(path, ring) as reader, av.open(reader) as container:
        demuxed, decoded = [], []
        for packet in container.demux(container.streams[0]):
            demuxed += [packet] if packet.size else []
            decoded += packet.decode()
    return demuxed, decoded, gaps, assembler


def test_vp8_resolution_change_stays_in_one_file(tmp_path):
    sizes = [(320, 240)] * 20 + [(640, 360)] * 20
    demuxed, decoded, gaps, _ = record(tmp_path, "video/vp8", packets("video/vp8", sizes))
    assert len(decoded) == len(demuxed) == 40 and not gaps
    assert {(f.width, f.height) for f in decoded} == {(320, 240), (640, 360)}


def test_h264_fragmented_frames_reordered_decode_complete(tmp_path):
    stream = packets("video/h264", [(640, 480)] * 15, noise=True)
    assert any(p.payload[0] & 0x1F == 28 for p in stream)  # FU-A
    assert any(p.payload[0] & 0x1F == 24 for p in stream)  # STAP-A
    random.Random(3).shuffle(shuffled := stream[1:40])      # reordered within the window
    demuxed, decoded, gaps, _ = record(tmp_path, "video/h264", stream[:1] + shuffled + stream[40:])
    assert len(decoded) == len(demuxed) == 15 and not gaps


@pytest.mark.parametrize("mime", ["video/vp8", "video/h264"])
def test_unrecoverable_hole_drops_until_the_next_keyframe(tmp_path, mime):
    stream = packets(mime, [(320, 240)] * 40, keyframes=(0, 25))
    frame_starts = [i for i, p in enumerate(stream) if i == 0 or p.timestamp != stream[i - 1].timestamp]
    lost = frame_starts[10] + 0  # the first packet of frame 10 never comes
    stream = stream[:lost] + stream[lost + 1:]
    # push with time moving on, so the hole outlives the reorder window
    ring = KeyRing(os.urandom(32))
    gaps = []
    assembler = FrameAssembler(DEPACKETIZERS[mime](), lambda: gaps.append(1), window=0.05)
    file = TrackFile(tmp_path / "t.enc", *ring.new_data_key(), mime)
    written = []
    for i, packet in enumerate(stream):
        for frame in assembler.push(packet, now=i * 0.01):
            written.append(frame)
            file.write(frame.data, (frame.timestamp - stream[0].timestamp) // 90, frame.keyframe)
    file.close()
    assert gaps  # a keyframe was asked for
    assert len(written) == 10 + 15  # frames 0-9, then from the keyframe at 25 on
    assert written[10].keyframe
    with EncryptedReader(tmp_path / "t.enc", ring) as reader, av.open(reader) as container:
        assert sum(1 for _ in container.decode(video=0)) == 25


def test_malformed_payloads_are_dropped_not_raised():
    depacketizer = DEPACKETIZERS["video/h264"]()
    for bad in (b"\x18\x00\xff\x67", b"\x1c\x05", b"\x19abc", b""):
        with pytest.raises((ValueError, IndexError)):
            depacketizer.frame([bad])
    gaps = []
    assembler = FrameAssembler(depacketizer, lambda: gaps.append(1))
    start = RtpPacket(96, 1, 1, 100, 1, b"\x18\x00\xff\x67")
    start.keyframe = True
    assert assembler.push(start, 0.0) == [] and gaps
