"""Simulcast pieces that need no network: SDP, header extensions, the VP8 descriptor."""

from __future__ import annotations

import av

from sfu.fanout import Target, Wire
from sfu.h264_sps import h264_keyframe_size
from sfu.keyframe import vp8_keyframe_size
from sfu.rtp_packet import RtpPacket, extension_value
from sfu.simulcast_sdp import REPAIRED_RID_URI, RID_URI, answer_simulcast, offered_rid_extensions, parse_simulcast
from sfu.vp8_descriptor import picture_ids

OFFER = "\r\n".join([
    "v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=sendonly", "a=rtpmap:111 opus/48000/2",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "a=mid:1", "a=sendonly",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    f"a=extmap:10 {RID_URI}", f"a=extmap:11 {REPAIRED_RID_URI}",
    "a=rtpmap:96 VP8/90000", "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
    "a=rid:f send", "a=rid:h send", "a=rid:q send", "a=rid:x recv",
    "a=simulcast:send f;h;~q",
    "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:2", "a=sendonly", "a=rtpmap:96 VP8/90000",
    "a=rid:a send", "a=simulcast:send a",  # one layer is no simulcast
]) + "\r\n"

ANSWER = "\r\n".join([
    "v=0", "o=- 3 4 IN IP4 127.0.0.1", "s=-", "t=0 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:0", "a=recvonly", "a=rtpmap:111 opus/48000/2",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "a=mid:1", "a=recvonly",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=rtpmap:96 VP8/90000", "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
]) + "\r\n"


def test_offer_layers_are_read_lowest_first_and_answered_as_offered():
    offers = parse_simulcast(OFFER)
    assert list(offers) == ["1"]
    offer = offers["1"]
    assert offer.rids == ["q", "h", "f"] and offer.offered == ["f", "h", "q"]
    assert (offer.rid_id, offer.repaired_rid_id) == (10, 11)
    answer = answer_simulcast(ANSWER, offers)
    video = answer.split("m=video")[1].splitlines()
    assert "a=simulcast:recv f;h;q" in video
    assert [line for line in video if line.startswith("a=rid:")] == ["a=rid:f recv", "a=rid:h recv", "a=rid:q recv"]
    assert f"a=extmap:10 {RID_URI}" in video and f"a=extmap:11 {REPAIRED_RID_URI}" in video
    assert sum(line.startswith("a=extmap:4 ") for line in video) == 1  # not repeated
    assert any(line.startswith("a=fmtp:96 x-google-start-bitrate=") for line in video)
    assert "a=fmtp:97 apt=96" in video  # RTX untouched
    assert "a=rid" not in answer.split("m=video")[0]
    assert answer_simulcast(ANSWER, {}) == ANSWER


def test_rid_extensions_are_accepted_on_every_video_mline():
    offer = OFFER.replace("a=mid:2", f"a=mid:2\r\na=extmap:10 {RID_URI}")
    answer = ANSWER + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=inactive\r\na=rtpmap:96 VP8/90000\r\n"
    extended = answer_simulcast(answer, {}, offered_rid_extensions(offer))
    assert f"a=extmap:10 {RID_URI}" in extended.split("a=mid:2")[1]
    assert "a=simulcast" not in extended and "a=rid:" not in extended
    assert "extmap:10" not in extended.split("m=video")[0]  # audio: not offered there


def test_garbage_rids_are_ignored():
    bad = OFFER.replace("a=rid:h send", "a=rid:h;evil send").replace("a=extmap:10", "a=extmap:x")
    assert parse_simulcast(bad) == {}
    assert parse_simulcast("v=0\r\n") == {}


def test_header_extension_values():
    body = bytes([0x40, ord("1"), 0xA0, ord("h")])  # mid (id 4) "1", rid (id 10) "h"
    packet = bytes([0x90, 96, 0, 1]) + bytes(8) + b"\xbe\xde\x00\x01" + body + b"payload"
    assert extension_value(packet, 4) == b"1"
    assert extension_value(packet, 10) == b"h"
    assert extension_value(packet, 11) is None
    assert extension_value(packet[:14], 10) is None  # truncated
    assert extension_value(bytes([0x80]) + packet[1:], 10) is None  # no extension bit


def vp8(picture_id: int, tl0: int, keyframe: bool = False, width: int = 640, height: int = 360) -> bytes:
    descriptor = bytes([0x90, 0xC0, 0x80 | (picture_id >> 8), picture_id & 0xFF, tl0])
    if keyframe:
        frame = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A]) + width.to_bytes(2, "little") + height.to_bytes(2, "little")
    else:
        frame = bytes([0x11, 0x02, 0x00])
    return descriptor + frame + bytes(20)


def test_vp8_descriptor_read_and_rewritten_for_one_target():
    assert picture_ids(vp8(0x1234, 7)) == (0x1234, 7)
    assert picture_ids(b"\x10\x00") == (None, None)
    assert vp8_keyframe_size(vp8(5, 1, keyframe=True)) == (640, 360)
    assert vp8_keyframe_size(vp8(5, 1)) is None
    target = Target(Wire(), ssrc=1, payload_type=96, audio_level_id=0)
    target.c.vp8 = 1
    target.c.picture_id_offset = 0x7FFF - 0x1234 + 3   # wraps at 15 bits
    target.c.tl0_offset = 250
    copy = target.rewritten(RtpPacket(96, 1, 9, 9, 9, vp8(0x1234, 7)))
    assert picture_ids(copy.payload) == (2, (7 + 250) & 0xFF)
    assert copy.payload[5:] == vp8(0x1234, 7)[5:]


def test_h264_keyframe_size_from_its_sps():
    """Real SPSs (libx264 through PyAV: constrained baseline as browsers send, and High
    with cropping), alone and in a STAP-A as Chromium packs them before an IDR."""
    for profile, (width, height) in (("baseline", (320, 180)), ("high", (1278, 718))):
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.options = {"profile": profile}
        frame = av.VideoFrame(width, height, "yuv420p")
        data = b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])
        nals = [n for n in data.split(b"\x00\x00\x01") if n]
        sps = next(n.rstrip(b"\x00") for n in nals if n[0] & 0x1F == 7)
        pps = next(n.rstrip(b"\x00") for n in nals if n[0] & 0x1F == 8)
        assert h264_keyframe_size(sps) == (width, height)
        stap_a = bytes([0x18]) + b"".join(len(n).to_bytes(2, "big") + n for n in (sps, pps))
        assert h264_keyframe_size(stap_a) == (width, height)
    assert h264_keyframe_size(bytes([0x67, 0x42])) is None  # truncated
    assert h264_keyframe_size(bytes([0x65, 0x88])) is None  # an IDR slice, no SPS
