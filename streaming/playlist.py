"""LL-HLS media playlists of an HlsWindow, written with the `m3u8` package.

Rendered once per window version with a placeholder where each viewer's access query
goes, then filled in per request: hundreds of players cost one render per part.
"""

from __future__ import annotations

import datetime
import math
import re

import m3u8

from .hls_window import HlsWindow

AUTH = "__AUTH__"  # replaced by the viewer's signed query (or nothing)
LIVE_SEGMENTS = 6  # segments listed in a live playlist


def _uri(stream: str, name: str) -> str:
    return f"{stream}/{name}?{AUTH}"


def render(window: HlsWindow, stream: str, part_target: float, target_duration: float,
           low_latency: bool) -> str:
    """The live playlist: with parts, preload hint and server control when low_latency,
    else only whole segments (the plain, cacheable variant for CDNs)."""
    playlist = m3u8.M3U8()
    playlist.version = 9 if low_latency else 7
    playlist.target_duration = math.ceil(target_duration)
    listed = [s for s in window.segments if low_latency or s.complete]
    segments = listed[-LIVE_SEGMENTS:]
    playlist.media_sequence = segments[0].msn if segments else window.first_msn
    # Discontinuities that went before the first listed segment (RFC 8216 §4.3.3.3).
    skipped = sum(s.discontinuity for s in window.segments if segments and s.msn < segments[0].msn)
    if window.discontinuity_sequence + skipped:
        playlist.discontinuity_sequence = window.discontinuity_sequence + skipped
    if low_latency:
        playlist.server_control = m3u8.ServerControl(
            can_block_reload="YES", part_hold_back=round(3 * part_target, 3),
            hold_back=round(3 * playlist.target_duration, 3))
        playlist.part_inf = m3u8.PartInformation(part_target=part_target)
    for i, segment in enumerate(segments):
        parts = [dict(uri=_uri(stream, f"p{segment.msn}.{k}.m4s"), duration=round(p.duration, 5),
                      independent="YES" if p.independent else None)
                 for k, p in enumerate(segment.parts)] if low_latency else None
        when = datetime.datetime.fromtimestamp(segment.wall_start, datetime.timezone.utc)
        playlist.segments.append(m3u8.Segment(
            uri=_uri(stream, f"s{segment.msn}.m4s") if segment.complete else None,
            duration=round(segment.duration, 5) if segment.complete else None,
            program_date_time=when, parts=parts, discontinuity=segment.discontinuity,
            init_section={"uri": _uri(stream, "init.mp4")} if i == 0 else None))
    if window.ended:
        playlist.is_endlist = True
    elif low_latency:
        msn, part = window.next_part()
        playlist.preload_hint = m3u8.PreloadHint("PART", None, _uri(stream, f"p{msn}.{part}.m4s"))
    return playlist.dumps()


PASSTHROUGH_BANDWIDTH = 6_000_000  # what a publisher may send; we do not know its bitrate


def render_master(variants: list[tuple[str, str, tuple[int, int] | None, int | None]], audio_bitrate: int) -> str:
    """The multivariant playlist: (uri, CODECS, (width, height) or None, video bitrate or None)."""
    playlist = m3u8.M3U8()
    playlist.version = 9
    playlist.is_independent_segments = True
    playlist.is_variant = True
    for uri, codecs, size, bitrate in variants:
        info = {"bandwidth": int(((bitrate or PASSTHROUGH_BANDWIDTH) + audio_bitrate) * 1.1), "codecs": codecs}
        if size is not None:
            info["resolution"] = f"{size[0]}x{size[1]}"
        playlist.playlists.append(m3u8.Playlist(f"{uri}?{AUTH}", info, [], None))
    return playlist.dumps()


def fill(text: str, query: str) -> str:
    return text.replace("?" + AUTH, "?" + query if query else "")


def render_vod(manifest: dict, segments: list[dict]) -> str:
    """A kept stream as a VOD playlist (URIs beside it): its (trimmed) segments, its
    chapters as EXT-X-DATERANGE (CLASS "com.telemed.chapter", X-TITLE), and the clinical
    notices made while it was live (CLASS "com.telemed.clinical", X-KIND, X-SEQ: the
    session log's sequence number, so a player can fetch the item)."""
    playlist = m3u8.M3U8()
    playlist.version = 7
    playlist.playlist_type = "vod"
    playlist.is_endlist = True
    playlist.target_duration = math.ceil(max((s["duration"] for s in segments), default=1))
    playlist.media_sequence = segments[0]["msn"] if segments else 0
    # Program time 0 is the first segment's start; chapters count from there.
    started = manifest["segments"][0]["wall_start"] if manifest["segments"] else manifest["started_at"]
    chapters = list(manifest["chapters"])
    clinical = sorted(manifest.get("clinical", []), key=lambda c: c["wall"])
    for i, segment in enumerate(segments):
        end = segment["t"] + segment["duration"]
        ranges = []
        seg_end = segment["wall_start"] + segment["duration"]
        while clinical and (clinical[0]["wall"] < seg_end or i == len(segments) - 1):
            mark = clinical.pop(0)
            if mark["wall"] < segments[0]["wall_start"]:
                continue  # trimmed away
            when = datetime.datetime.fromtimestamp(mark["wall"], datetime.timezone.utc)
            ranges.append({"id": f"clinical-{mark['seq']}", "class": "com.telemed.clinical",
                           "start_date": when.isoformat(timespec="milliseconds"),
                           "x_kind": '"' + re.sub(r"[^a-z0-9_-]", "", mark["kind"].lower()) + '"',
                           "x_seq": str(mark["seq"])})
        while chapters and (chapters[0]["at"] < end or i == len(segments) - 1):
            chapter = chapters.pop(0)
            when = datetime.datetime.fromtimestamp(started + chapter["at"], datetime.timezone.utc)
            ranges.append({"id": f"chapter-{chapter['at']}", "class": "com.telemed.chapter",
                           "start_date": when.isoformat(timespec="milliseconds"),
                           "x_title": '"' + chapter["title"].replace('"', "'") + '"'})
        playlist.segments.append(m3u8.Segment(
            uri=f"s{segment['msn']}.m4s?{AUTH}", duration=segment["duration"],
            program_date_time=datetime.datetime.fromtimestamp(segment["wall_start"], datetime.timezone.utc),
            dateranges=ranges or None,
            init_section={"uri": f"init.mp4?{AUTH}"} if i == 0 else None))
    return playlist.dumps()
