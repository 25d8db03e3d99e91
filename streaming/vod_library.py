"""Streams kept after they went live: listing, their VOD playlists and media (read
from the encrypted archive), and the lesson edits a host makes (chapters, trim)."""

from __future__ import annotations

import re
from pathlib import Path

from recorder import manifest_file
from vault import EncryptedReader, KeyRing, VaultError

from .vod_archive import MEDIA, stream_dir

STREAM_ID = re.compile(r"[0-9a-f]{1,32}")
MAX_CHAPTERS = 200
MAX_TITLE = 200


class VodError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class VodLibrary:
    def __init__(self, root: Path, ring: KeyRing) -> None:
        self.root = root
        self._ring = ring

    def list(self, room: str) -> list[dict]:
        base = self.root / room
        out = []
        for directory in sorted(base.iterdir()) if base.is_dir() else []:
            try:
                manifest = self.manifest(room, directory.name)
            except VodError:
                continue  # still live, or unreadable: not offered
            out.append(summary(manifest))
        return sorted(out, key=lambda m: m["started_at"])

    def manifest(self, room: str, stream: str) -> dict:
        return self._load(room, stream)[0]

    def _load(self, room: str, stream: str) -> tuple[dict, bytes]:
        """(manifest, its wrapped data key) of an ended stream."""
        if not STREAM_ID.fullmatch(stream):
            raise VodError(404, "not-found", "no such stream")
        directory = stream_dir(self.root, room, stream)
        try:
            manifest, wrapped = manifest_file.load(directory, self._ring)
        except FileNotFoundError:
            raise VodError(404, "not-found", "no such stream") from None
        except (OSError, ValueError, VaultError):
            raise VodError(404, "not-found", "that stream cannot be read") from None
        if manifest.get("ended_at") is None:
            raise VodError(404, "not-ended", "that stream is still live")
        return manifest, wrapped

    def media(self, room: str, stream: str, name: str) -> bytes:
        manifest = self.manifest(room, stream)
        if name == "init.mp4":
            offset, length = manifest["init"]
        elif match := re.fullmatch(r"s(\d{1,9})\.m4s", name):
            entry = next((s for s in manifest["segments"] if s["msn"] == int(match[1])), None)
            if entry is None:
                raise VodError(404, "not-found", "no such segment")
            offset, length = entry["offset"], entry["length"]
        else:
            raise VodError(404, "not-found", "no such file")
        with EncryptedReader(stream_dir(self.root, room, stream) / MEDIA, self._ring) as reader:
            return reader.read_at(offset, length)

    def edit(self, room: str, stream: str, body: dict) -> dict:
        """Set the chapters and the trim of a kept stream (a host's lesson edit)."""
        manifest, wrapped = self._load(room, stream)
        duration = sum(s["duration"] for s in manifest["segments"])
        chapters = body.get("chapters", manifest["chapters"])
        trim = body.get("trim", manifest["trim"])
        if not isinstance(chapters, list) or len(chapters) > MAX_CHAPTERS:
            raise VodError(400, "bad-request", f"chapters must be a list of at most {MAX_CHAPTERS}")
        clean = []
        for chapter in chapters:
            at, title = (chapter.get("at"), chapter.get("title")) if isinstance(chapter, dict) else (None, None)
            if not isinstance(at, (int, float)) or isinstance(at, bool) or not 0 <= at <= duration:
                raise VodError(400, "bad-request", f"a chapter's 'at' must be seconds within 0..{duration:.1f}")
            if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE or not title.isprintable():
                raise VodError(400, "bad-request", f"a chapter's 'title' must be 1..{MAX_TITLE} printable characters")
            clean.append({"at": round(float(at), 3), "title": title.strip()})
        if not isinstance(trim, dict):
            raise VodError(400, "bad-request", "trim must be an object {start, end}")
        start, end = trim.get("start", 0.0), trim.get("end")
        if not isinstance(start, (int, float)) or isinstance(start, bool) or not 0 <= start < duration \
                or (end is not None and (not isinstance(end, (int, float)) or isinstance(end, bool)
                                         or not start < end <= duration)):
            raise VodError(400, "bad-request", "trim needs 0 <= start < end <= the stream's duration")
        manifest["chapters"] = sorted(clean, key=lambda c: c["at"])
        manifest["trim"] = {"start": float(start), "end": None if end is None else float(end)}
        manifest_file.save(stream_dir(self.root, room, stream), manifest, self._ring.unwrap(wrapped), wrapped)
        return summary(manifest)


def summary(manifest: dict) -> dict:
    start = manifest["segments"][0]["wall_start"] if manifest["segments"] else manifest["started_at"]
    return {"stream": manifest["stream"], "started_at": manifest["started_at"], "ended_at": manifest["ended_at"],
            "duration": round(sum(s["duration"] for s in manifest["segments"]), 3),
            "chapters": manifest["chapters"], "trim": manifest["trim"],
            "clinical": [{"at": round(c["wall"] - start, 3), "kind": c["kind"], "seq": c["seq"]}
                         for c in manifest.get("clinical", [])]}


def trimmed(manifest: dict) -> list[dict]:
    """The segments a VOD playlist lists: those that overlap the trimmed span."""
    start, end = manifest["trim"]["start"], manifest["trim"]["end"]
    out, t = [], 0.0
    for segment in manifest["segments"]:
        if t + segment["duration"] > start and (end is None or t < end):
            out.append({**segment, "t": t})
        t += segment["duration"]
    return out


__all__ = ["VodError", "VodLibrary"]
