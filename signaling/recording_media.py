"""HTTP access to a recording's media and clinical record, for the replay page.

    GET /api/rooms/{room}/recordings/{id}/links              fresh signed links to every track
    GET /api/rooms/{room}/recordings/{id}/tracks/{track}     the track, decrypted, with Range
    GET /api/rooms/{room}/recordings/{id}/clinical           session-log entries up to its end
    GET /api/rooms/{room}/recordings/{id}/ecg/{seq}          the frames of the ECG stream that
                                                             log entry ``seq`` announced

Who may open a recording (a host token, an API key or the admin key) is decided by
``auth.recordings_reader``; the manifest route, which also hands out the track
links, is there. A browser's <video> cannot send
an Authorization header, so a track opens through a short-lived signed link
(``?who&exp&sig``, recording_links.py). It is read through the vault by plaintext
offset and streamed, as are ECG recordings; nothing decrypted touches the disk.

Every open is audited (``recording-open``): links, the clinical record and ECG each
time, and each link's first media request (a player makes many Range requests per link).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path

from aiohttp import web

from clinical.actor import Actor
from conference.signed_urls import SignatureError
from recorder import ArchiveError, Recording, RecordingError
from vault import ByteSource, EncryptedReader, KeyRing, VaultError

from .auth import recordings_reader
from .byte_range import RangeNotSatisfiable, requested_range
from .http_errors import HttpError
from .recording_links import track_links, track_object
from .server import Server

log = logging.getLogger("telemed.replay")

PIECE = 256 * 1024  # bytes decrypted and sent at a time
MEDIA_TYPES = {("webm", "video"): "video/webm", ("webm", "audio"): "audio/webm",
               ("matroska", "video"): "video/x-matroska", ("matroska", "audio"): "audio/x-matroska"}
AUDITED_LINKS = 4096  # links whose first use is remembered, so each is audited once


def media_type(track: dict) -> str:
    return MEDIA_TYPES.get((track.get("container"), track.get("kind")), "application/octet-stream")


class _FirstUse:
    """Signatures already seen, oldest forgotten first."""

    def __init__(self, size: int = AUDITED_LINKS) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def __call__(self, signature: str) -> bool:
        if signature in self._seen:
            return False
        self._seen[signature] = None
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True


def routes(server: Server) -> list[web.RouteDef]:
    manager = server.recordings
    signer = server.recording_links
    first_use = _FirstUse()

    def find(room: str, recording_id: str) -> Recording:
        try:
            return manager.get(room, recording_id)
        except RecordingError as exc:
            raise HttpError(exc.status, exc.code, exc.message) from None

    async def opened(request: web.Request) -> tuple[Recording, Actor]:
        room, recording_id = request.match_info["room"], request.match_info["id"]
        by = await recordings_reader(server, request, room)
        return find(room, recording_id), by

    def clinical_span(recording: Recording) -> tuple[int | None, int | None]:
        span = recording.describe().get("session_log") or {}
        # While it runs the log keeps growing: everything so far.
        to_seq = None if recording.state == "recording" else span.get("to_seq")
        return span.get("from_seq"), to_seq

    async def links(request: web.Request) -> web.Response:
        recording, by = await opened(request)
        await manager.opened(recording, by, what="links")
        return web.json_response({"tracks": track_links(signer, recording.room, recording.describe(), by.identity),
                                  "expires_in": signer.ttl})

    async def track(request: web.Request) -> web.StreamResponse:
        room, recording_id, track_id = (request.match_info[k] for k in ("room", "id", "track"))
        if "sig" in request.query:
            try:
                who = signer.verify(room, track_object(recording_id, track_id), request.query)
            except SignatureError as exc:
                raise HttpError(403, "forbidden", str(exc)) from None
            by = Actor(who, credential="signed-link", address=request.remote or "")
            audit = first_use(request.query["sig"])
        else:
            by, audit = await recordings_reader(server, request, room), True
        recording = find(room, recording_id)
        described = next((t for t in recording.describe()["tracks"] if t["id"] == track_id), None)
        if described is None:
            raise HttpError(404, "not-found", "no such track in this recording")
        if audit:
            await manager.opened(recording, by, what=f"track {track_id}")
        try:  # the local file, or its copy in the S3 archive when it is gone here
            source = await asyncio.to_thread(manager.media_source, recording, described["file"])
        except FileNotFoundError:
            raise HttpError(404, "not-found", "the file is gone") from None
        except RecordingError as exc:
            raise HttpError(exc.status, exc.code, exc.message) from None
        return await _send_decrypted(request, source, server.keyring, media_type(described))

    async def clinical(request: web.Request) -> web.Response:
        recording, by = await opened(request)
        from_seq, to_seq = clinical_span(recording)
        entries = await server.clinical.log_entries(recording.room, to_seq)
        for entry in entries:
            if entry["kind"] == "dicom":
                # The objects open through the room's own object routes and links.
                entry["body"] = {**entry["body"], **server.clinical.links.object_links(
                    recording.room, entry["body"]["sha256"], by.identity)}
        await manager.opened(recording, by, what="clinical")
        return web.json_response({"from_seq": from_seq, "to_seq": to_seq, "entries": entries})

    async def ecg(request: web.Request) -> web.StreamResponse:
        recording, by = await opened(request)
        seq = request.match_info["seq"]
        entries = await server.clinical.log_entries(recording.room, clinical_span(recording)[1])
        entry = next((e for e in entries if str(e["seq"]) == seq), None)
        path = await server.clinical.ecg_recording(recording.room, entry) if entry else None
        if path is None:
            raise HttpError(404, "not-found", "no such ECG stream in this recording")
        await manager.opened(recording, by, what=f"ecg {seq}")
        return await _send_decrypted(request, path, server.clinical.ring, "application/octet-stream")

    base = "/api/rooms/{room}/recordings/{id}"
    return [
        web.get(base + "/links", links),
        web.get(base + "/tracks/{track}", track),
        web.get(base + "/clinical", clinical),
        web.get(base + "/ecg/{seq}", ecg),
    ]


async def _send_decrypted(request: web.Request, path: Path | ByteSource, ring: KeyRing,
                          content_type: str) -> web.StreamResponse:
    try:
        reader = await asyncio.to_thread(EncryptedReader, path, ring)
    except FileNotFoundError:
        raise HttpError(404, "not-found", "the file is gone") from None
    except VaultError as exc:
        raise HttpError(409, f"vault-{exc.code}", "the file cannot be decrypted") from None
    except ArchiveError as exc:
        log.warning("cannot read %s: %s", getattr(path, "name", path), exc)
        raise HttpError(502, "archive-unavailable", "the archived file cannot be read now") from None
    except OSError:
        raise HttpError(503, "storage-unavailable", "the file cannot be read now") from None
    try:
        return await _send(request, reader, content_type)
    finally:
        reader.close()


async def _send(request: web.Request, reader: EncryptedReader, content_type: str) -> web.StreamResponse:
    size = reader.size
    try:
        wanted = requested_range(request, size)
    except RangeNotSatisfiable:
        raise HttpError(416, "range-not-satisfiable", f"the track holds {size} bytes",
                        {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"}) from None
    start, stop = wanted or (0, size)
    response = web.StreamResponse(status=206 if wanted else 200, headers={
        "Accept-Ranges": "bytes", "Content-Type": content_type,
        "Cache-Control": "private, no-store"})  # patient data: never in a shared cache
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response.content_length = stop - start
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    offset = start
    while offset < stop:
        try:
            piece = await asyncio.to_thread(reader.read_at, offset, min(PIECE, stop - offset))
        except (OSError, VaultError) as exc:  # the headers are out: all that is left is to cut
            log.warning("reading %s stopped at byte %d: %s", reader.path, offset, exc)
            response.force_close()
            return response
        if not piece:
            break  # only complete chunks count in size; never send past them
        await response.write(piece)
        offset += len(piece)
    await response.write_eof()
    return response
