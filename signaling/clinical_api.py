"""HTTP access to shared DICOM objects: the file and server-rendered previews.

    GET /api/rooms/{room}/objects/{sha256}
    GET /api/rooms/{room}/objects/{sha256}/preview.png?frame=N&wc=C&ww=W
    GET /api/rooms/{room}/objects/{sha256}/links        (room token only)

Either ``Authorization: Bearer <room token>`` or the signed ``?who&exp&sig`` of a
notice's link. ``links`` renews a viewer's expired links; a signed link cannot mint
new ones, so a leaked link still dies after its few minutes. Only objects shared in that room are served (404 otherwise, also for
objects that exist under another room), and every access goes to the audit log.
"""

from __future__ import annotations

import asyncio
import math
import re
from urllib.parse import quote

from aiohttp import web

from clinical.errors import ClinicalError
from conference.signed_urls import SignatureError

from .auth import bearer, claims_for
from .http_errors import HttpError
from .server import Server

_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_FRAME_INDEX = 100_000


def routes(server: Server) -> list[web.RouteDef]:
    hub = server.clinical

    async def authorize(request: web.Request) -> tuple[str, str, dict, dict]:
        """(room, sha256, the object's log body, audit details with the actor)."""
        room, sha256 = request.match_info["room"], request.match_info["sha256"]
        if not _SHA256.fullmatch(sha256):
            raise HttpError(404, "not-found", "no such object in this room")
        if "sig" in request.query:
            try:
                who = hub.links.verify(room, sha256, request.query)
            except SignatureError as exc:
                raise HttpError(403, "forbidden", str(exc)) from None
            actor = {"actor": who, "via": "link"}
        else:
            claims = await claims_for(server, bearer(request), room)
            actor = {"actor": claims.identity, "via": "token", "role": claims.role.value}
        shared = await hub.shared_object(room, sha256)
        if shared is None or sha256 not in hub.objects:
            raise HttpError(404, "not-found", "no such object in this room")
        return room, sha256, shared, actor

    async def download(request: web.Request) -> web.StreamResponse:
        room, sha256, shared, actor = await authorize(request)
        await hub.auditor.record(actor.pop("actor"), "open", sha256, room, **actor)
        try:
            data = await asyncio.to_thread(hub.objects.get, sha256)
        except ClinicalError as exc:
            raise HttpError(404 if exc.code == "object-not-found" else 503, exc.code, exc.message) from None
        return web.Response(body=data, headers={
            "Content-Type": "application/dicom",
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(shared['name'], safe='')}",
            # Immutable (content-addressed), but patient data: no shared caches.
            "Cache-Control": "private, max-age=300",
        })

    async def preview(request: web.Request) -> web.Response:
        room, sha256, _, actor = await authorize(request)
        frame, window = _preview_params(request)
        try:
            png = await hub.previews.png(sha256, frame, window)
        except ClinicalError as exc:
            raise HttpError(400, exc.code, exc.message) from None
        await hub.auditor.record(actor.pop("actor"), "preview", sha256, room, frame=frame,
                                 window=list(window) if window else None, **actor)
        return web.Response(body=png, content_type="image/png",
                            headers={"Cache-Control": "private, max-age=300"})

    async def links(request: web.Request) -> web.Response:
        room, sha256 = request.match_info["room"], request.match_info["sha256"]
        claims = await claims_for(server, bearer(request), room)
        if not _SHA256.fullmatch(sha256) or await hub.shared_object(room, sha256) is None:
            raise HttpError(404, "not-found", "no such object in this room")
        return web.json_response({**hub.links.object_links(room, sha256, claims.identity),
                                  "expires_in": hub.links.ttl})

    return [
        web.get("/api/rooms/{room}/objects/{sha256}", download),
        web.get("/api/rooms/{room}/objects/{sha256}/links", links),
        web.get("/api/rooms/{room}/objects/{sha256}/preview.png", preview),
    ]


def _preview_params(request: web.Request) -> tuple[int, tuple[float, float] | None]:
    query = request.query
    try:
        frame = int(query.get("frame", "0"))
        center, width = query.get("wc"), query.get("ww")
        window = None if center is None and width is None else (float(center), float(width))
    except (TypeError, ValueError):
        raise HttpError(400, "bad-request", "frame must be an integer; wc and ww numbers, both or neither") from None
    if not 0 <= frame <= MAX_FRAME_INDEX:
        raise HttpError(400, "preview-frame", f"frame must be 0..{MAX_FRAME_INDEX}")
    if window is not None and not all(math.isfinite(v) for v in window):
        raise HttpError(400, "preview-window", "wc and ww must be finite")
    return frame, window
