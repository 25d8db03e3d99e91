"""RTCP parsing and the reports the SFU writes itself (RFC 3550, 4585, REMB draft)."""

from __future__ import annotations


from aiortc import rtp as _rtp

RtcpPacket = _rtp.RtcpPacket
RtcpSrPacket = _rtp.RtcpSrPacket
RtcpRrPacket = _rtp.RtcpRrPacket
RtcpRtpfbPacket = _rtp.RtcpRtpfbPacket
RtcpPsfbPacket = _rtp.RtcpPsfbPacket
RtcpByePacket = _rtp.RtcpByePacket
PSFB_PLI = _rtp.RTCP_PSFB_PLI
PSFB_FIR = _rtp.RTCP_PSFB_FIR
PSFB_APP = _rtp.RTCP_PSFB_APP
RTPFB_NACK = _rtp.RTCP_RTPFB_NACK


def parse_rtcp(data: bytes) -> list:
    """Parse a compound RTCP packet; raise ValueError if malformed."""
    try:
        return RtcpPacket.parse(data)
    except (ValueError, IndexError, KeyError) as exc:  # aiortc lets some slip through
        raise ValueError(f"malformed RTCP: {exc}") from None


def sender_report(ssrc: int, ntp: int, rtp_timestamp: int, packets: int, octets: int) -> bytes:
    return bytes(RtcpSrPacket(ssrc=ssrc, sender_info=_rtp.RtcpSenderInfo(
        ntp_timestamp=ntp, rtp_timestamp=rtp_timestamp & 0xFFFFFFFF,
        packet_count=packets & 0xFFFFFFFF, octet_count=octets & 0xFFFFFFFF)))


def receiver_report(ssrc: int, reports: list) -> bytes:
    return bytes(RtcpRrPacket(ssrc=ssrc, reports=reports))


def report_block(ssrc: int, fraction_lost: int, packets_lost: int, highest_seq: int,
                 jitter: int, lsr: int, dlsr: int) -> object:
    return _rtp.RtcpReceiverInfo(
        ssrc=ssrc, fraction_lost=fraction_lost, packets_lost=max(0, min(packets_lost, 0x7FFFFF)),
        highest_sequence=highest_seq & 0xFFFFFFFF, jitter=jitter & 0xFFFFFFFF, lsr=lsr, dlsr=dlsr)


def nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    packet = RtcpRtpfbPacket(fmt=RTPFB_NACK, ssrc=sender_ssrc, media_ssrc=media_ssrc)
    packet.lost = sorted(lost)
    return bytes(packet)


def pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return bytes(RtcpPsfbPacket(fmt=PSFB_PLI, ssrc=sender_ssrc, media_ssrc=media_ssrc))


def remb(sender_ssrc: int, bitrate: int, media_ssrcs: list[int]) -> bytes:
    return bytes(RtcpPsfbPacket(fmt=PSFB_APP, ssrc=sender_ssrc, media_ssrc=0,
                                fci=_rtp.pack_remb_fci(bitrate, media_ssrcs)))


def unpack_remb(packet: RtcpPsfbPacket) -> tuple[int, list[int]] | None:
    try:
        return _rtp.unpack_remb_fci(packet.fci)
    except ValueError:
        return None
