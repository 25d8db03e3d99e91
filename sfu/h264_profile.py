"""Whether a receiver can decode an H264 stream, from their SDP parameters (RFC 6184).

A stream is forwarded as it is, so what matters is not what two peers would negotiate
between themselves, but whether the receiver's stated capability covers the stream:
the same packetization mode, a profile that contains the stream's (a Constrained
Baseline stream conforms to every other profile), and a level at least the stream's.
"""

from __future__ import annotations

from aiortc.sdp import H264Profile, parse_h264_profile_level_id

# Without profile-level-id, RFC 6184 means Baseline level 1; WebRTC stacks (libwebrtc,
# aiortc) read Constrained Baseline level 3.1 instead, and that is what peers expect.
DEFAULT_PROFILE_LEVEL_ID = "42e01f"


def profile_and_level(parameters: dict) -> tuple[H264Profile, int] | None:
    """(profile, level_idc) or None when the parameter is malformed."""
    try:
        profile, level = parse_h264_profile_level_id(
            str(parameters.get("profile-level-id", DEFAULT_PROFILE_LEVEL_ID)))
    except ValueError:
        return None
    return profile, int(level)


def decodable(stream: dict, receiver: dict) -> bool:
    """Can a receiver stating ``receiver`` decode a stream described by ``stream``?"""
    if str(stream.get("packetization-mode", "0")) != str(receiver.get("packetization-mode", "0")):
        return False
    sent, accepted = profile_and_level(stream), profile_and_level(receiver)
    if sent is None or accepted is None:
        return False
    (sent_profile, sent_level), (accepted_profile, accepted_level) = sent, accepted
    if sent_profile != accepted_profile and sent_profile != H264Profile.PROFILE_CONSTRAINED_BASELINE:
        return False
    return sent_level <= accepted_level
