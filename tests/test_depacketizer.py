"""RTP payloads from aiortc's own packetizers come back as frames that PyAV decodes."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from recorder.depacketizer import depacketizer_for
from sfu.rtp_packet import RtpPacket


def packets(encoder, count: int, start_seq: int = 65530):
    """RTP packets of `count` frames of a moving picture, as aiortc would send them."""
    seq = start_seq
    out = []
    for n in range(count):
        image = np.zeros((240, 320, 3), np.uint8)
        image[:, (n * 8) % 320:, 1] = 200
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = n * 3000, Fraction(1, 90000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=n == 0)
        for i, payload in enumerate(payloads):
            out.append(RtpPacket(96, int(i == len(payloads) - 1), seq & 0xFFFF, timestamp, 1, payload))
            seq += 1
    return out


@pytest.mark.parametrize("mime, encoder, decoder", [
    ("video/VP8", Vp8Encoder, "vp8"), ("video/H264", H264Encoder, "h264")])
def test_frames_decode(mime, encoder, decoder):
    depacketizer = depacketizer_for(mime)
    codec = av.CodecContext.create(decoder, "r")
    decoded = 0
    frames = [f for p in packets(encoder(), 10) if (f := depacketizer.push(p)) is not None]
    assert len(frames) == 10 and frames[0].keyframe and not frames[1].keyframe
    for frame in frames:
        for picture in codec.decode(av.Packet(frame.data)):
            assert (picture.width, picture.height) == (320, 240)
            decoded += 1
    assert decoded >= 9 and depacketizer.frames_dropped == 0


def test_a_hole_drops_frames_until_the_next_keyframe():
    encoder = Vp8Encoder()
    stream = packets(encoder, 4)
    key = [p for p in stream if p.timestamp == stream[0].timestamp]
    rest = stream[len(key):]
    depacketizer = depacketizer_for("video/vp8")
    assert depacketizer.needs_keyframe
    frames = [f for p in key if (f := depacketizer.push(p)) is not None]
    assert len(frames) == 1 and not depacketizer.needs_keyframe
    lossy = rest[1:]  # the first delta frame loses its first packet
    assert [f for p in lossy if (f := depacketizer.push(p)) is not None] == []
    assert depacketizer.needs_keyframe and depacketizer.frames_dropped >= 1
    again = packets(encoder, 1, start_seq=lossy[-1].seq + 1)  # n == 0: forced keyframe
    frames = [f for p in again if (f := depacketizer.push(p)) is not None]
    assert len(frames) == 1 and frames[0].keyframe and not depacketizer.needs_keyframe


def test_garbage_never_raises():
    for mime in ("video/vp8", "video/h264", "audio/opus"):
        depacketizer = depacketizer_for(mime)
        for seq, payload in enumerate([b"\x10", b"\x9c", b"\x18\x00\x05ab", b"\x1c\x05", b"\x1f" * 3,
                                       b"\x7c\x85", b"\x7c\x05x", b""]):
            depacketizer.push(RtpPacket(96, seq % 2, seq, seq // 2, 1, payload))
    with pytest.raises(ValueError):
        depacketizer_for("video/AV1")
