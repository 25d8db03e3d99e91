"""One track's file: frames muxed by PyAV, as they come, into an encrypted vault stream.

VP8/Opus go in WebM, H264 in Matroska, in the muxer's live mode: no seeking back, no cues,
clusters of at most CLUSTER_MS written whole. PyAV writes into memory; the bytes move to
the vault writer after each frame, and ``flush()`` seals them into a chunk, so every chunk
on disk ends on a cluster boundary and any prefix of chunks is a file that decodes to its
end with no repair step.
"""

from __future__ import annotations

import errno
import fractions
import os
import struct

import av

from vault import EncryptedWriter

CLUSTER_MS = 500
TIME_BASE = fractions.Fraction(1, 1000)
CHUNK_SIZE = 1024 * 1024  # larger than a flush interval of video: chunks end where we flush
# Opus identification header (RFC 7845), 2 channels as WebRTC negotiates, no pre-skip.
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 0, 48000, 0, 0)

CONTAINERS = {"video/vp8": ("webm", "webm"), "audio/opus": ("webm", "webm"),
              "video/h264": ("matroska", "mkv")}


def file_name(track_id: str, mime_type: str) -> str:
    return f"{track_id}.{CONTAINERS[mime_type.lower()][1]}.enc"


class _Pending:
    """PyAV's output: write-only (so the muxer streams), drained after every frame."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def take(self) -> bytes:
        data = bytes(self.data)
        self.data.clear()
        return data


class TrackFile:
    """``write`` raises OSError when the disk refuses (the caller stops the recording), and
    ValueError when the first keyframe cannot start a file (the caller waits for another)."""

    def __init__(self, path: str | os.PathLike[str], data_key: bytes, wrapped: bytes,
                 mime_type: str) -> None:
        self.mime_type = mime_type.lower()
        self.container = CONTAINERS[self.mime_type][0]
        self._out = EncryptedWriter(path, data_key, wrapped, chunk_size=CHUNK_SIZE, fsync_interval=None)
        self._pending = _Pending()
        self._mux: av.container.OutputContainer | None = None
        self._stream = None
        self._last_pts = -1
        self.frames = 0

    def _open(self, first: bytes) -> None:
        if self.mime_type == "audio/opus":
            mux = self._new_muxer()
            stream = mux.add_stream("libopus", rate=48000, layout="stereo")
            # The encoder is opened only to give the stream its parameters; nothing is encoded.
            stream.codec_context.open()
            stream.codec_context.extradata = OPUS_HEAD
        else:
            width, height = _dimensions(self.mime_type, first)
            if not width or not height:
                raise ValueError("the first keyframe does not describe the picture (no SPS?)")
            mux = self._new_muxer()
            stream = mux.add_mux_stream(self.mime_type.split("/")[1], width=width, height=height)
        stream.time_base = TIME_BASE
        self._mux, self._stream = mux, stream

    def _new_muxer(self) -> av.container.OutputContainer:
        return av.open(self._pending, "w", format=self.container,
                       options={"live": "1", "cluster_time_limit": str(CLUSTER_MS)})

    def write(self, data: bytes, pts_ms: int, keyframe: bool) -> None:
        if self._mux is None:
            self._open(data)
        pts = max(pts_ms, self._last_pts + 1)  # the muxer needs strictly rising timestamps
        self._last_pts = pts
        packet = av.Packet(data)
        packet.stream = self._stream
        packet.pts = packet.dts = pts
        packet.time_base = TIME_BASE
        packet.is_keyframe = keyframe or self.mime_type == "audio/opus"
        self._mux.mux(packet)
        self.frames += 1
        self._move()

    def _move(self) -> None:
        if self._pending.data:
            self._out.write(self._pending.take())

    def flush(self) -> None:
        """Seal everything the muxer has written into a chunk on disk."""
        if not self._out.closed:
            self._out.flush()

    def sync(self) -> None:
        """fsync (slow: call it off the event loop, where the track may end meanwhile)."""
        try:
            self._out.sync()
        except OSError as exc:
            if exc.errno != errno.EBADF:  # closed meanwhile: close() wrote it out
                raise

    def close(self) -> None:
        """Finish the muxer and close the stream as whole; after a disk error, only let go."""
        if self._out.closed:
            self._release_muxer()
            return
        try:
            if self._mux is not None:
                self._mux.close()
                self._mux = None
                self._move()
        finally:
            self._release_muxer()
            self._out.close()

    def _release_muxer(self) -> None:
        if self._mux is not None:
            mux, self._mux = self._mux, None
            try:
                mux.close()
            except (av.FFmpegError, OSError):
                pass


def _dimensions(mime_type: str, keyframe: bytes) -> tuple[int, int]:
    """The picture size from the first keyframe (the decoder reads it from the stream anyway)."""
    if mime_type == "video/vp8" and len(keyframe) >= 10 and keyframe[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", keyframe, 6)
        return width & 0x3FFF, height & 0x3FFF
    codec = av.CodecContext.create(mime_type.split("/")[1], "r")
    try:
        for frame in [*codec.decode(av.Packet(keyframe)), *codec.decode(None)]:
            return frame.width, frame.height
    except av.FFmpegError:
        pass
    return 0, 0
