"""Fragmented MP4 (CMAF) written from encoded samples: one init segment, then moof+mdat
fragments that are LL-HLS parts.

Written by hand rather than through libavformat's mp4 muxer because we decide where each
fragment ends (a part boundary on the program clock, for audio and video together), and
because passthrough must put the publisher's H264 bytes in unchanged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

VIDEO_TRACK = 1
AUDIO_TRACK = 2
VIDEO_TIMESCALE = 90000
AUDIO_TIMESCALE = 48000

_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_SYNC = 0x02000000      # sample_depends_on = 2: a keyframe
_NON_SYNC = 0x01010000  # depends on others, is_non_sync_sample


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def annexb_units(data: bytes) -> list[bytes]:
    """NAL units of an Annex B access unit (start codes of 3 or 4 bytes)."""
    units, start, n = [], None, len(data)
    i = 0
    while i + 2 < n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            if start is not None:
                units.append(data[start:i].rstrip(b"\x00"))
            i += 3
            start = i
        else:
            i += 1
    if start is not None and start < n:
        units.append(data[start:])
    return [u for u in units if u]


def avcc_sample(data: bytes) -> bytes:
    """An Annex B access unit as MP4 wants it: each NAL unit prefixed by its length.
    Parameter sets stay in-band too, so a player joining at any part can decode."""
    return b"".join(struct.pack(">I", len(u)) + u for u in annexb_units(data))


def avc_config(sps: bytes, pps: bytes) -> bytes:
    """The avcC record (ISO 14496-15) from one SPS and one PPS."""
    return (bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + struct.pack(">H", len(sps)) + sps
            + b"\x01" + struct.pack(">H", len(pps)) + pps)


def parameter_sets(data: bytes) -> tuple[bytes, bytes] | None:
    """(SPS, PPS) found in an Annex B access unit or encoder extradata, if both are there."""
    sps = pps = None
    for unit in annexb_units(data):
        kind = unit[0] & 0x1F
        if kind == 7 and sps is None:
            sps = unit
        elif kind == 8 and pps is None:
            pps = unit
    return (sps, pps) if sps and pps else None


@dataclass(frozen=True)
class VideoTrack:
    width: int
    height: int
    sps: bytes
    pps: bytes

    @property
    def codec(self) -> str:
        """The RFC 6381 string for the playlist's CODECS attribute."""
        return f"avc1.{self.sps[1]:02x}{self.sps[2]:02x}{self.sps[3]:02x}"


@dataclass(frozen=True)
class AudioTrack:
    """AAC, as the compositor encodes it."""
    config: bytes  # AudioSpecificConfig (the AAC encoder's extradata)
    channels: int = 1
    codec: str = "mp4a.40.2"

    def sample_entry(self) -> bytes:
        asc = self.config
        decoder_specific = b"\x05" + bytes([len(asc)]) + asc
        decoder_config = (b"\x04" + bytes([13 + len(decoder_specific)]) + b"\x40\x15"
                          + bytes(3) + struct.pack(">II", 0, 0) + decoder_specific)
        sl_config = b"\x06\x01\x02"
        es = (b"\x03" + bytes([3 + len(decoder_config) + len(sl_config)]) + struct.pack(">HB", AUDIO_TRACK, 0)
              + decoder_config + sl_config)
        return _audio_entry(b"mp4a", self.channels, full_box(b"esds", 0, 0, es))


@dataclass(frozen=True)
class OpusTrack:
    """Opus as a publisher sent it (passthrough): ISO/IEC 23003-5 "Opus" with dOps."""
    channels: int = 2
    pre_skip: int = 312
    codec: str = "opus"

    def sample_entry(self) -> bytes:
        dops = box(b"dOps", struct.pack(">BBHIhB", 0, self.channels, self.pre_skip, AUDIO_TIMESCALE, 0, 0))
        return _audio_entry(b"Opus", self.channels, dops)


def _audio_entry(kind: bytes, channels: int, config: bytes) -> bytes:
    return box(kind, bytes(6), struct.pack(">H", 1), bytes(8),
               struct.pack(">HHHHI", channels, 16, 0, 0, AUDIO_TIMESCALE << 16), config)


def init_segment(video: VideoTrack | None, audio: AudioTrack | OpusTrack | None) -> bytes:
    traks, trexs = [], []
    if video is not None:
        traks.append(_video_trak(video))
        trexs.append(_trex(VIDEO_TRACK))
    if audio is not None:
        traks.append(_audio_trak(audio))
        trexs.append(_trex(AUDIO_TRACK))
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6cmfcmp41")
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, 0),
                    struct.pack(">IH10x", 0x10000, 0x100), _MATRIX, bytes(24), struct.pack(">I", 3))
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trexs))


def _trex(track: int) -> bytes:
    return full_box(b"trex", 0, 0, struct.pack(">IIIII", track, 1, 0, 0, 0))


def _trak(track: int, timescale: int, handler: bytes, name: bytes, media_header: bytes,
          sample_entry: bytes, width: int = 0, height: int = 0, volume: int = 0) -> bytes:
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, track, 0, 0), bytes(8),
                    struct.pack(">HHHH", 0, 0, volume, 0), _MATRIX, struct.pack(">II", width << 16, height << 16))
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, 0x55C4, 0))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, handler), name + b"\x00")
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), sample_entry),
               full_box(b"stts", 0, 0, bytes(4)), full_box(b"stsc", 0, 0, bytes(4)),
               full_box(b"stsz", 0, 0, bytes(8)), full_box(b"stco", 0, 0, bytes(4)))
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", media_header, dinf, stbl)))


def _video_trak(video: VideoTrack) -> bytes:
    entry = box(b"avc1", bytes(6), struct.pack(">H", 1), bytes(16),
                struct.pack(">HHIIIH", video.width, video.height, 0x480000, 0x480000, 0, 1),
                bytes(32), struct.pack(">Hh", 0x18, -1), box(b"avcC", avc_config(video.sps, video.pps)))
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    return _trak(VIDEO_TRACK, VIDEO_TIMESCALE, b"vide", b"Program", vmhd, entry, video.width, video.height)


def _audio_trak(audio: AudioTrack | OpusTrack) -> bytes:
    entry = audio.sample_entry()
    smhd = full_box(b"smhd", 0, 0, bytes(4))
    return _trak(AUDIO_TRACK, AUDIO_TIMESCALE, b"soun", b"Program audio", smhd, entry, volume=0x100)


@dataclass
class Sample:
    data: bytes
    duration: int  # in the track's timescale
    keyframe: bool = True


@dataclass
class TrackRun:
    track: int
    decode_time: int  # of the first sample, in the track's timescale
    samples: list[Sample] = field(default_factory=list)


def fragment(sequence: int, runs: list[TrackRun]) -> bytes:
    """One moof+mdat holding each track's run; empty runs are left out."""
    runs = [r for r in runs if r.samples]

    def moof(offsets: list[int]) -> bytes:
        trafs = []
        for run, offset in zip(runs, offsets):
            tfhd = full_box(b"tfhd", 0, 0x020000, struct.pack(">I", run.track))  # default-base-is-moof
            tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", run.decode_time))
            entries = b"".join(struct.pack(">III", s.duration, len(s.data), _SYNC if s.keyframe else _NON_SYNC)
                               for s in run.samples)
            trun = full_box(b"trun", 0, 0x000701, struct.pack(">Ii", len(run.samples), offset), entries)
            trafs.append(box(b"traf", tfhd, tfdt, trun))
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)

    size = len(moof([0] * len(runs)))
    offsets, position = [], size + 8
    for run in runs:
        offsets.append(position)
        position += sum(len(s.data) for s in run.samples)
    return moof(offsets) + box(b"mdat", *(s.data for run in runs for s in run.samples))
