"""Checks on LL-HLS output shared by the streaming tests: fetching, following a live
playlist with blocking reloads, validating playlists, decoding segments."""

from __future__ import annotations

import io
import time

import aiohttp
import av
import m3u8
import numpy as np


async def fetch(session: aiohttp.ClientSession, url: str, headers: dict | None = None) -> tuple[int, bytes]:
    async with session.get(url, headers=headers or {}) as r:
        return r.status, await r.read()


async def playlist_until(session, url: str, ready, timeout: float = 60) -> m3u8.M3U8:
    """Reload the playlist until `ready(playlist)`, blocking on its next part each time."""
    deadline = time.monotonic() + timeout
    query = url
    while time.monotonic() < deadline:
        status, body = await fetch(session, query)
        assert status == 200, body
        playlist = m3u8.loads(body.decode())
        if ready(playlist):
            return playlist
        msn, part = hinted(playlist)
        query = f"{url}&_HLS_msn={msn}&_HLS_part={part}"
    raise AssertionError("the playlist never got there")


def hinted(playlist: m3u8.M3U8) -> tuple[int, int]:
    name = playlist.preload_hint.uri.split("/")[-1].split("?")[0]  # p{msn}.{part}.m4s
    msn, part = name[1:-4].split(".")
    return int(msn), int(part)


def complete(playlist: m3u8.M3U8) -> list[m3u8.Segment]:
    return [s for s in playlist.segments if s.uri]


def check_playlist(playlist: m3u8.M3U8) -> None:
    target = playlist.part_inf.part_target
    assert 0.2 <= target <= 0.334 and playlist.server_control.can_block_reload == "YES"
    assert playlist.server_control.part_hold_back >= 2 * target
    assert playlist.segments[0].init_section is not None
    for segment in playlist.segments:
        assert segment.parts and segment.parts[0].independent == "YES"
        assert all(p.duration <= target for p in segment.parts)
        if segment.uri:  # (m3u8 parses no date onto the trailing open segment)
            assert segment.program_date_time is not None
            assert 1.0 <= segment.duration <= playlist.target_duration
            assert abs(sum(p.duration for p in segment.parts) - segment.duration) < 1e-3
    numbers = [int(s.uri.split("/s")[-1].split(".")[0]) for s in complete(playlist)]
    assert numbers == list(range(playlist.media_sequence, playlist.media_sequence + len(numbers)))


def decode(init: bytes, segment: bytes) -> tuple[list[np.ndarray], int]:
    """(RGB frames, audio frame count) of one segment."""
    container = av.open(io.BytesIO(init + segment))
    pictures = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    container = av.open(io.BytesIO(init + segment))
    return pictures, sum(1 for _ in container.decode(audio=0))


def centre(picture: np.ndarray) -> str:
    h, w, _ = picture.shape
    return "rgb"[int(np.argmax(picture[h // 2, w // 2]))]
