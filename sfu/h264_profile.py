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


# The H264 profiles aiortc's own codec list holds, and so the only ones it matches in an offer.
_AIORTC_PROFILES = {H264Profile.PROFILE_BASELINE, H264Profile.PROFILE_CONSTRAINED_BASELINE}


def shown_to_aiortc(offer: str) -> str:
    """The offer as aiortc is given it: H264 in a profile aiortc does not know (Main,
    High: what most hardware encoders send, and what browsers also offer to receive)
    shows it Constrained Baseline at the same level.

    aiortc matches only its own (Constrained) Baseline H264: it refuses a publisher that
    sends High ("Failed to set remote video description"), and leaves a viewer's High out
    of the answer. We forward without decoding, so a profile only decides who can decode
    the stream, and that is read from the real offer (sfu/codec.py), which is also what
    the answer repeats (aiortc_hook.answer_offered_h264_profiles).
    """
    lines = offer.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    for start, end in zip(starts, starts[1:] + [len(lines)]):
        h264 = {line.split(":", 1)[1].split()[0] for line in lines[start:end]
                if line.lower().startswith("a=rtpmap:") and " h264/" in line.lower()}
        for i in range(start, end):
            if not lines[i].startswith("a=fmtp:"):
                continue
            pt, params = _fmtp(lines[i])
            value = str(params.get("profile-level-id", ""))
            found = profile_and_level(params) if value else None
            if pt in h264 and len(value) == 6 and (found is None or found[0] not in _AIORTC_PROFILES):
                lines[i] = lines[i].replace(f"profile-level-id={value}", f"profile-level-id=42e0{value[4:]}")
    return "".join(lines)


def _fmtp(line: str) -> tuple[str, dict[str, str]]:
    """(payload type, parameters) of an `a=fmtp:` line."""
    pt, _, rest = line[len("a=fmtp:"):].strip().partition(" ")
    params = dict(item.strip().partition("=")[::2] for item in rest.split(";") if item.strip())
    return pt, params
