"""Answering players: playlists (with blocking reload), the init segment, segments and
parts, with the statuses LL-HLS players expect. Handlers in signaling/ stay thin."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .hls_access import HlsAccess, SignatureError
from .hls_window import Gone
from .live_stream import LiveStream
from .live_streams import LiveStreams
from .playlist import fill
from .request_limiter import RequestLimiter

PART = re.compile(r"p(\d{1,9})\.(\d{1,4})\.m4s")
SEGMENT = re.compile(r"s(\d{1,9})\.m4s")
AHEAD = 2  # a blocking reload may ask this many segments past the live edge (RFC 8216bis)
FIRST_PART_WAIT = 10.0  # seconds: a compositor process starts (imports, encoder) before its first part


class HlsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class HlsService:
    def __init__(self, streams: LiveStreams, access: HlsAccess, limiter: RequestLimiter) -> None:
        self.streams = streams
        self.access = access
        self.limiter = limiter

    def signed_viewer(self, room: str, query: Mapping[str, str]) -> str:
        try:
            return self.access.verify(room, query)
        except SignatureError as exc:
            raise HlsError(403, "forbidden", str(exc)) from None

    def admit(self, client: str, who: str) -> None:
        if not self.limiter.allow((client, who)):
            raise HlsError(429, "rate-limited", "too many requests; slow down")

    def _stream(self, room: str) -> LiveStream:
        stream = self.streams.get(room)
        if stream is None:
            raise HlsError(404, "not-live", "the room is not live")
        return stream

    async def playlist(self, room: str, who: str, params: Mapping[str, str], auth_query: str,
                       low_latency: bool, rendition: int = 0) -> str:
        stream = self._stream(room)
        stream.seen(who)
        if rendition >= len(stream.windows):
            raise HlsError(404, "not-found", "no such rendition")
        window = stream.windows[rendition]
        if not window.segments:  # just gone live: hold the player until there is a part
            if not await window.wait_for(0, 0, FIRST_PART_WAIT):
                raise HlsError(404, "not-yet", "the stream is starting; try again shortly")
        if low_latency and "_HLS_msn" in params:
            msn = _number(params.get("_HLS_msn"), "_HLS_msn")
            part = _number(params["_HLS_part"], "_HLS_part") if "_HLS_part" in params else None
            if msn > window.last_msn + AHEAD:
                raise HlsError(400, "bad-request", "_HLS_msn is too far past the live edge")
            # Held until that part exists; after 3 target durations the current playlist goes out.
            await window.wait_for(msn, part, 3 * stream.program.segment_duration)
        elif "_HLS_part" in params:
            raise HlsError(400, "bad-request", "_HLS_part needs _HLS_msn")
        return fill(stream.playlist(low_latency, rendition), auth_query)

    async def master(self, room: str, who: str, auth_query: str) -> str:
        stream = self._stream(room)
        stream.seen(who)
        if stream.window.init is None:  # just gone live: the renditions start together
            await stream.window.wait_for(0, 0, FIRST_PART_WAIT)
        return fill(stream.master(), auth_query)

    async def file(self, room: str, stream_id: str, name: str, rendition: int = 0) -> bytes:
        stream = self._stream(room)
        if stream_id != stream.id:
            raise HlsError(410, "gone", "that stream has ended")
        if rendition >= len(stream.windows):
            raise HlsError(404, "not-found", "no such rendition")
        window = stream.windows[rendition]
        if name == "init.mp4":
            if window.init is None:
                raise HlsError(404, "not-yet", "the stream is starting")
            return window.init
        try:
            if match := PART.fullmatch(name):
                msn, index = int(match[1]), int(match[2])
                if not window.has(msn, index) and (msn, index) == window.next_part():
                    await window.wait_for(msn, index, 3 * stream.program.part_target)  # the preload hint
                segment = window.segment(msn)
                if segment is None or index >= len(segment.parts):
                    raise HlsError(404, "not-yet", "no such part yet")
                return segment.parts[index].data
            if match := SEGMENT.fullmatch(name):
                segment = window.segment(int(match[1]))
                if segment is None or not segment.complete:
                    raise HlsError(404, "not-yet", "no such segment yet")
                return segment.data
        except Gone:
            raise HlsError(410, "gone", "that part of the stream is no longer kept") from None
        raise HlsError(404, "not-found", "no such file")


def _number(value: str | None, name: str) -> int:
    if value is None or not value.isdigit() or len(value) > 9:
        raise HlsError(400, "bad-request", f"{name} must be a non-negative integer")
    return int(value)
