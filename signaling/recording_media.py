"""HTTP access to a recording's media and clinical record, for the replay page.

    GET /api/rooms/{room}/recordings                         the room's recordings
    GET /api/rooms/{room}/recordings/{id}                    the manifest, tracks with signed links
    GET /api/rooms/{room}/recordings/{id}/links              fresh signed links to every track
    GET /api/rooms/{room}/recordings/{id}/tracks/{track}     the track, decrypted, with Range
    GET /api/rooms/{room}/recordings/{id}/clinical           session-log entries up to its end
    GET /api/rooms/{room}/recordings/{id}/ecg/{seq}          the frames of the ECG stream that
                                                             log entry ``seq`` announced

A browser's <video> cannot send an Authorization header, so media is opened through
short-lived signed links (``?who&exp&sig``, conference/signed_urls.py) that the manifest
and ``links`` hand out to whoever may open the recording: a host token, a token with
the ``access`` grant, or the admin key. A track is read through the vault by plaintext
offset and streamed; nothing decrypted touches the disk.

Every open is audited: issuing links and reading the clinical record each time, and
each link's first media request (a player makes many Range requests per link).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from aiohttp import web

from conference.signed_urls import SignatureError, UrlSigner
from vault import EncryptedReader, VaultError

from .auth import bearer, claims_for, is_admin
from .byte_range import RangeNotSatisfiable, requested_range
from .http_errors import HttpError
from .server import Server

PIECE = 256 * 1024  # bytes decrypted and sent at a time
MEDIA_TYPES = {("webm", "video"): "video/webm", ("webm", "audio"): "audio/webm",
               ("mkv", "video"): "video/x-matroska", ("matroska", "video"): "video/x-matroska",
               ("mp4", "video"): "video/mp4", ("mp4", "audio"): "audio/mp4"}
AUDITED_LINKS = 4096  # links whose first use is remembered, so each is audited once


def media_type(track: dict) -> str:
    return MEDIA_TYPES.get((track.get("container", "webm"), track.get("kind", "video")), "application/octet-stream")


class RecordingMedia:
    """Who may open a recording, its signed links, and reading its tracks."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.links = UrlSigner(server.settings.secret, ttl=server.settings.recording_link_ttl)
        self._audited: OrderedDict[str, None] = OrderedDict()

    async def authorize(self, request: web.Request, room: str) -> dict[str, str]:
        """The audit actor of a bearer that may open the room's recordings, else 401/403."""
        if self.server.settings.admin_key and is_admin(self.server, request):
            return {"actor": "admin", "via": "admin-key"}
        claims = claims_for(self.server, bearer(request), room)
        if not (claims.grants.admin or getattr(claims.grants, "access", False)):
            raise HttpError(403, "forbidden", "only a host, or a token with the access grant, may open recordings")
        return {"actor": claims.identity, "via": "token", "role": claims.role.value}

    async def manifest(self, room: str, recording_id: str) -> dict:
        manifest = await self.server.recordings.manifest(room, recording_id)
        if manifest is None:
            raise HttpError(404, "not-found", "no such recording in this room")
        return manifest

    def track_links(self, room: str, manifest: dict, who: str) -> dict[str, str]:
        base = f"/api/rooms/{room}/recordings/{manifest['id']}/tracks"
        return {t["id"]: f"{base}/{t['id']}?{self.links.query(room, _object(manifest['id'], t['id']), who)}"
                for t in manifest.get("tracks", [])}

    def with_links(self, room: str, manifest: dict, who: str) -> dict:
        """The manifest as its reader gets it: each track carries its signed ``url``."""
        links = self.track_links(room, manifest, who)
        return {**manifest, "tracks": [{**t, "url": links[t["id"]]} for t in manifest.get("tracks", [])],
                "links_expire_in": self.links.ttl}

    async def audit(self, actor: dict[str, str], action: str, object_id: str, room: str, **details: Any) -> None:
        details = {**actor, **details}
        await self.server.clinical.auditor.record(details.pop("actor"), action, object_id, room, **details)

    def first_use(self, signature: str) -> bool:
        if signature in self._audited:
            return False
        self._audited[signature] = None
        while len(self._audited) > AUDITED_LINKS:
            self._audited.popitem(last=False)
        return True


def _object(recording_id: str, track_id: str) -> str:
    return f"recording/{recording_id}/{track_id}"


def routes(server: Server) -> list[web.RouteDef]:
    media = RecordingMedia(server)

    async def manifest(request: web.Request) -> web.Response:
        room, recording_id = request.match_info["room"], request.match_info["id"]
        actor = await media.authorize(request, room)
        found = await media.manifest(room, recording_id)
        await media.audit(actor, "open", f"recording/{recording_id}", room, what="manifest")
        return web.json_response(media.with_links(room, found, actor["actor"]))

    async def listing(request: web.Request) -> web.Response:
        room = request.match_info["room"]
        await media.authorize(request, room)
        return web.json_response({"recordings": await server.recordings.list(room)})

    async def links(request: web.Request) -> web.Response:
        room, recording_id = request.match_info["room"], request.match_info["id"]
        actor = await media.authorize(request, room)
        manifest = await media.manifest(room, recording_id)
        await media.audit(actor, "open", f"recording/{recording_id}", room, what="links")
        return web.json_response({"tracks": media.track_links(room, manifest, actor["actor"]),
                                  "expires_in": media.links.ttl})

    async def track(request: web.Request) -> web.StreamResponse:
        room, recording_id, track_id = (request.match_info[k] for k in ("room", "id", "track"))
        object_id = _object(recording_id, track_id)
        if "sig" in request.query:
            try:
                who = media.links.verify(room, object_id, request.query)
            except SignatureError as exc:
                raise HttpError(403, "forbidden", str(exc)) from None
            actor, audit = {"actor": who, "via": "link"}, media.first_use(request.query["sig"])
        else:
            actor, audit = await media.authorize(request, room), True
        manifest = await media.manifest(room, recording_id)
        described = next((t for t in manifest.get("tracks", []) if t["id"] == track_id), None)
        path = server.recordings.track_path(room, recording_id, track_id) if described else None
        if path is None:
            raise HttpError(404, "not-found", "no such track in this recording")
        try:
            reader = await asyncio.to_thread(EncryptedReader, path, server.keyring)
        except FileNotFoundError:
            raise HttpError(404, "not-found", "this track has no media yet") from None
        except VaultError as exc:
            raise HttpError(409, f"vault-{exc.code}", "the track cannot be decrypted") from None
        try:
            if audit:
                await media.audit(actor, "open", object_id, room, range=request.headers.get("Range"))
            return await _send(request, reader, media_type(described))
        finally:
            reader.close()

    async def clinical(request: web.Request) -> web.Response:
        room, recording_id = request.match_info["room"], request.match_info["id"]
        actor = await media.authorize(request, room)
        manifest = await media.manifest(room, recording_id)
        span = manifest.get("session_log") or {}
        entries = await server.clinical.log_entries(room, span.get("to_seq"))
        for entry in entries:
            if entry["kind"] == "dicom":
                # The objects open through the room's own object routes and links.
                entry["body"] = {**entry["body"], **server.clinical.links.object_links(
                    room, entry["body"]["sha256"], actor["actor"])}
        await media.audit(actor, "open", f"recording/{recording_id}", room, what="clinical",
                          entries=len(entries))
        return web.json_response({"from_seq": span.get("from_seq"), "to_seq": span.get("to_seq"),
                                  "entries": entries})

    async def ecg(request: web.Request) -> web.StreamResponse:
        room, recording_id = request.match_info["room"], request.match_info["id"]
        actor = await media.authorize(request, room)
        manifest = await media.manifest(room, recording_id)
        try:
            seq = int(request.match_info["seq"])
        except ValueError:
            raise HttpError(404, "not-found", "no such ECG stream in this recording") from None
        to_seq = (manifest.get("session_log") or {}).get("to_seq")
        entries = await server.clinical.log_entries(room, to_seq)
        entry = next((e for e in entries if e["seq"] == seq), None)
        path = await server.clinical.ecg_recording(room, entry) if entry else None
        if path is None:
            raise HttpError(404, "not-found", "no such ECG stream in this recording")
        await media.audit(actor, "open", f"ecg/{seq}", room, recording=recording_id)
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream",
                                               "Cache-Control": "private, no-store"})

    return [
        web.get("/api/rooms/{room}/recordings", listing),
        web.get("/api/rooms/{room}/recordings/{id}/ecg/{seq}", ecg),
        web.get("/api/rooms/{room}/recordings/{id}", manifest),
        web.get("/api/rooms/{room}/recordings/{id}/links", links),
        web.get("/api/rooms/{room}/recordings/{id}/tracks/{track}", track),
        web.get("/api/rooms/{room}/recordings/{id}/clinical", clinical),
    ]


async def _send(request: web.Request, reader: EncryptedReader, content_type: str) -> web.StreamResponse:
    size = reader.size
    headers = {"Accept-Ranges": "bytes", "Content-Type": content_type,
               # Patient data: never in a shared cache.
               "Cache-Control": "private, no-store"}
    try:
        wanted = requested_range(request, size)
    except RangeNotSatisfiable:
        raise HttpError(416, "range-not-satisfiable", f"the track holds {size} bytes",
                        {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"}) from None
    start, stop = wanted or (0, size)
    response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response.content_length = stop - start
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    offset = start
    while offset < stop:
        piece = await asyncio.to_thread(reader.read_at, offset, min(PIECE, stop - offset))
        if not piece:
            break  # cannot happen for complete chunks; never send past what exists
        await response.write(piece)
        offset += len(piece)
    await response.write_eof()
    return response
