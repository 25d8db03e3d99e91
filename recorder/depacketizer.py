"""RTP payloads back into codec frames: VP8 (RFC 7741), H264 (RFC 6184: single NAL unit,
STAP-A, FU-A; written as Annex B), Opus (one packet, one frame)."""

from __future__ import annotations

from collections.abc import Sequence

START_CODE = b"\x00\x00\x00\x01"


class Vp8Depacketizer:
    @staticmethod
    def _descriptor_size(payload: bytes) -> int:
        if not payload:
            raise ValueError("empty VP8 payload")
        pos = 1
        if payload[0] & 0x80:  # X: extension byte
            ext = payload[1]
            pos = 2
            if ext & 0x80:  # I: picture id, 7 or 15 bits
                pos += 2 if payload[pos] & 0x80 else 1
            if ext & 0x40:  # L: TL0PICIDX
                pos += 1
            if ext & 0x30:  # T or K: TID/KEYIDX
                pos += 1
        if pos >= len(payload):
            raise ValueError("VP8 payload descriptor without data")
        return pos

    def starts_frame(self, payload: bytes) -> bool:
        return bool(payload) and bool(payload[0] & 0x10) and not payload[0] & 0x07

    def frame(self, payloads: Sequence[bytes]) -> bytes:
        return b"".join(p[self._descriptor_size(p):] for p in payloads)


class H264Depacketizer:
    def starts_frame(self, payload: bytes) -> bool:
        if not payload:
            return False
        nal = payload[0] & 0x1F
        return nal != 28 or (len(payload) > 1 and bool(payload[1] & 0x80))

    def frame(self, payloads: Sequence[bytes]) -> bytes:
        out = bytearray()
        fragment_open = False
        for p in payloads:
            if not p:
                raise ValueError("empty H264 payload")
            nal = p[0] & 0x1F
            if 1 <= nal <= 23:
                out += START_CODE + p
            elif nal == 24:  # STAP-A: (16-bit size, NAL unit)*
                pos = 1
                while pos + 2 <= len(p):
                    size = (p[pos] << 8) | p[pos + 1]
                    pos += 2
                    if size == 0 or pos + size > len(p):
                        raise ValueError("STAP-A unit overruns the packet")
                    out += START_CODE + p[pos:pos + size]
                    pos += size
            elif nal == 28:  # FU-A: indicator, header (S, E, type), fragment
                if len(p) < 3:
                    raise ValueError("FU-A packet too short")
                header = p[1]
                if header & 0x80:
                    out += START_CODE + bytes([(p[0] & 0xE0) | (header & 0x1F)])
                    fragment_open = True
                elif not fragment_open:
                    raise ValueError("FU-A continuation without its start")
                out += p[2:]
                if header & 0x40:
                    fragment_open = False
            else:
                raise ValueError(f"unsupported H264 packetization (NAL type {nal})")
        if fragment_open:
            raise ValueError("FU-A fragment without its end")
        return bytes(out)


class OpusDepacketizer:
    def starts_frame(self, payload: bytes) -> bool:
        return True

    def frame(self, payloads: Sequence[bytes]) -> bytes:
        return b"".join(payloads)


DEPACKETIZERS = {"video/vp8": Vp8Depacketizer, "video/h264": H264Depacketizer,
                 "audio/opus": OpusDepacketizer}
