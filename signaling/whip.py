"""WHIP (RFC 9725) ingest and WHEP egress: HTTP-only WebRTC sessions for standard
tools such as OBS, GStreamer and simple players."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from conference.peer import Peer
from conference.protocol import ProtocolError
from rooms import Claims
from sfu import parse_offer

from .auth import bearer, claims_for
from .cluster_node import Elsewhere
from .http_errors import BODY_LIMITS, HttpError, json_error, read_body
from .ice_server_links import ice_server_links
from .origins import OriginPolicy
from .owner_redirect import redirect
from .server import Server

if TYPE_CHECKING:
    from aiortc.sdp import SessionDescription

log = logging.getLogger("telemed.whip")

# A DELETE shortly after the session ended (the client closed its connection first, say)
# still answers 200: clients log any error, and the session is gone either way.
ENDED_MEMORY_SECONDS = 120
SESSION_METHODS = "PATCH, DELETE, OPTIONS"
ENDPOINT_METHODS = "POST, OPTIONS"


class HttpSessions:
    """WHIP/WHEP sessions by id; each is a peer with no WebSocket.

    A session that has not connected within ``whip_connect_timeout`` is removed (its
    client vanished after the POST), so it stops counting toward the room's
    participants; one identity holds at most ``whip_sessions_per_token`` at once.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sessions: dict[str, Peer] = {}
        self._ended: dict[str, tuple[str, str, float]] = {}  # id -> (room, identity, when)
        self._opening: Counter[tuple[str, str]] = Counter()  # (room, identity) -> POSTs in progress

    async def start(self, request: web.Request, kind: str) -> web.Response:
        room = request.match_info["room"]
        claims = await claims_for(self.server, bearer(request), room)
        if kind == "whip" and not claims.grants.publish:
            raise HttpError(403, "forbidden", "this token may not publish")
        if kind == "whep" and not claims.grants.subscribe:
            raise HttpError(403, "forbidden", "this token may not subscribe")
        if request.content_type != "application/sdp":
            raise HttpError(415, "unsupported-media-type", "send the offer as application/sdp")
        holder = (room, claims.identity)
        held = self._opening[holder] + sum(1 for p in self.sessions.values()
                                           if p.room.name == room and p.identity == claims.identity)
        if held >= self.server.settings.whip_sessions_per_token:
            raise HttpError(429, "too-many-sessions", f"this token already holds {held} WHIP/WHEP "
                            "sessions; DELETE one first")
        self._opening[holder] += 1
        try:
            return await self._start(request, kind, room, claims)
        finally:
            self._opening[holder] -= 1
            if not self._opening[holder]:
                del self._opening[holder]

    async def _start(self, request: web.Request, kind: str, room: str, claims: Claims) -> web.Response:
        offer = await self._read_sdp(request)
        try:
            description, media = parse_offer(offer)
        except ValueError as exc:
            raise HttpError(400, "bad-sdp", str(exc)) from None
        if unbundled := _outside_bundle(description):
            # Our answer bundles everything on one transport; a client that expects a
            # transport per m-line would get a 201 and then a connection that never comes up.
            raise HttpError(400, "bundle-required", f"m-lines {', '.join(unbundled)} are not in the offer's "
                            "BUNDLE group: WHIP and WHEP carry all media on one transport (RFC 9725, RFC 9143); "
                            "bundle every m-line (GStreamer webrtcbin: bundle-policy=max-bundle)")
        try:
            peer = await self.server.join(claims, notify=lambda message: None, address=request.remote or "",
                                          can_wait=False, resumable=False)
        except Elsewhere as exc:
            raise redirect(request, exc) from None
        except ProtocolError as exc:
            status = {"not-found": 404, "room-full": 409, "server-draining": 503}.get(exc.code, 403)  # else: a host's say
            raise HttpError(status, exc.code, exc.message) from None
        try:
            if kind == "whip":
                publish = {m.mid: {"source": "camera" if m.kind == "video" else "microphone",
                                   "label": claims.name} for m in media if m.sends}
                if not publish:
                    raise HttpError(400, "bad-sdp", "the offer sends no audio or video")
                answer = await peer.offer(offer, publish, {})
                unusable = answer["rejected"] if not answer["published"] else {}
            else:
                subscribe = self._whep_subscriptions(peer, media)
                answer = await peer.offer(offer, {}, subscribe)
                unusable = {mid: why for mid, why in answer["rejected"].items() if mid in subscribe}
            if unusable:
                # Never a 201 over which nothing can flow: say which m-line and why.
                raise ProtocolError("codec-mismatch", "; ".join(f"m-line {mid}: {why}" for mid, why in unusable.items()))
        except ProtocolError as exc:
            await self.server.leave(peer)
            status = {"not-found": 404, "codec-mismatch": 406, "media-ports-exhausted": 503}.get(exc.code, 400)
            raise HttpError(status, exc.code, exc.message) from None
        except BaseException:
            await self.server.leave(peer)
            raise
        self.sessions[peer.id] = peer
        peer.on_connection_lost = lambda: asyncio.ensure_future(self.stop(peer.id))
        asyncio.get_running_loop().call_later(self.server.settings.whip_connect_timeout,
                                              self._reap_if_unconnected, peer.id)
        location = f"/{kind}/{room}/{peer.id}"
        headers = CIMultiDict({"Location": location, "ETag": f'"{peer.id}"'})
        for link in ice_server_links(self.server.ice_servers.for_identity(claims.identity)):
            headers.add("Link", link)
        self._add_recording_headers(headers, room, location)
        return web.Response(status=201, text=answer["sdp"], content_type="application/sdp", headers=headers)

    def _add_recording_headers(self, headers: CIMultiDict, room: str, location: str) -> None:
        """Consent: whether the room is being recorded (RFC 8941 boolean), and where to
        keep asking (docs/signaling.md, "Everyone knows when the room is recorded")."""
        recording = self.server.recordings.active(room)
        headers["Recording"] = f'?1;id="{recording.id}"' if recording else "?0"
        headers.add("Link", f'<{location}/recording>; rel="urn:telemed:recording"')

    async def recording(self, request: web.Request) -> web.Response:
        """The room's recording state for an HTTP-only session, cheap to poll with ETag."""
        peer = await self._session(request)
        recording = self.server.recordings.active(peer.room.name)
        etag = f'"{recording.id if recording else "none"}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.json_response({"recording": recording.announcement() if recording else None},
                                 headers={"ETag": etag, "Cache-Control": "no-cache"})

    def _whep_subscriptions(self, peer: Peer, media: list) -> dict[str, str]:
        wanted = {p.kind: p for p in peer.room.main_producers()}
        if not wanted:
            raise ProtocolError("not-found", "nothing is being published in this room yet")
        subscribe = {}
        for m in media:
            producer = wanted.pop(m.kind, None) if m.receives else None
            if producer is not None:
                subscribe[m.mid] = producer.id
        return subscribe

    def _reap_if_unconnected(self, session_id: str) -> None:
        peer = self.sessions.get(session_id)
        if peer is not None and (peer.connection is None
                                 or peer.connection.pc.connectionState in ("new", "connecting")):
            log.info("WHIP/WHEP session never connected; removed", extra={"fields": {
                "room": peer.room.name, "session": session_id}})
            asyncio.ensure_future(self.stop(session_id))

    async def _read_sdp(self, request: web.Request) -> str:
        raw = await read_body(request, request.app[BODY_LIMITS].sdp)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "bad-sdp", "SDP is not UTF-8") from None

    async def _session(self, request: web.Request) -> Peer:
        peer = self.sessions.get(request.match_info["session"])
        if peer is None or peer.room.name != request.match_info["room"]:
            raise HttpError(404, "not-found", "no such session")
        claims = await claims_for(self.server, bearer(request), peer.room.name)
        if claims.identity != peer.identity:
            raise HttpError(403, "forbidden", "not your session")
        return peer

    async def patch(self, request: web.Request) -> web.Response:
        peer = await self._session(request)
        if request.content_type != "application/trickle-ice-sdpfrag":
            raise HttpError(415, "unsupported-media-type", "send application/trickle-ice-sdpfrag")
        match = request.headers.get("If-Match")
        if match is not None and match.strip() not in ("*", f'"{peer.id}"'):
            raise HttpError(412, "precondition-failed", "If-Match does not name this session's ETag")
        fragment = await self._read_sdp(request)
        mid = None
        for line in fragment.splitlines():
            line = line.strip()
            if line.startswith("a=ice-ufrag:") and peer.connection is not None:
                ours = peer.connection.pc.remoteDescription
                if ours is not None and line not in ours.sdp:
                    # RFC 9725 §4.3.1: trickle only, so an ICE restart is a method not allowed.
                    raise HttpError(405, "ice-restart-unsupported", "ICE restart is not supported; "
                                    "start a new session", {"Allow": SESSION_METHODS})
            elif line.startswith("a=mid:"):
                mid = line[6:]
            elif line.startswith("a=candidate:") and peer.connection is not None:
                try:
                    await peer.connection.add_ice_candidate(line[2:], mid, None if mid else 0)
                except ValueError as exc:
                    raise HttpError(400, "bad-candidate", str(exc)) from None
        return web.Response(status=204)

    async def delete(self, request: web.Request) -> web.Response:
        session_id, room = request.match_info["session"], request.match_info["room"]
        ended = self._ended.get(session_id)
        if session_id not in self.sessions and ended is not None and ended[0] == room:
            claims = await claims_for(self.server, bearer(request), room)
            if claims.identity != ended[1]:
                raise HttpError(403, "forbidden", "not your session")
            return web.Response(status=200)
        peer = await self._session(request)
        await self.stop(peer.id)
        return web.Response(status=200)

    async def stop(self, session_id: str) -> None:
        peer = self.sessions.pop(session_id, None)
        if peer is not None:
            now = time.monotonic()
            self._ended = {k: v for k, v in self._ended.items() if now - v[2] < ENDED_MEMORY_SECONDS}
            self._ended[session_id] = (peer.room.name, peer.identity, now)
            await self.server.leave(peer)

    async def close(self) -> None:
        for session_id in list(self.sessions):
            await self.stop(session_id)


def _outside_bundle(description: SessionDescription) -> list[str]:
    """The mids of an offer that its largest BUNDLE group leaves out (none for one m-line)."""
    mids = [str(m.rtp.muxId) for m in description.media]
    groups = [{str(item) for item in g.items} for g in description.group if g.semantic == "BUNDLE"]
    bundled = max(groups, key=len, default=set())
    return [mid for mid in mids if mid not in bundled] if len(mids) > 1 else []


def cors_middleware(origins: OriginPolicy) -> web.middleware:
    """CORS for the WHIP/WHEP routes (RFC 9725 §4.6): pages from allowed origins may POST,
    PATCH and DELETE, and read the headers a client needs; everything else is untouched."""
    expose = "Location, ETag, Link, Accept-Post, Recording"

    @web.middleware
    async def cors(request: web.Request, handler) -> web.StreamResponse:
        if not request.path.startswith(("/whip/", "/whep/")) or "Origin" not in request.headers:
            return await handler(request)
        if not origins.allows(request):
            return json_error(403, "forbidden-origin", "this origin may not use WHIP/WHEP here")
        response = await handler(request)  # the error middleware, inside, made errors responses
        response.headers["Access-Control-Allow-Origin"] = request.headers["Origin"]
        response.headers["Access-Control-Expose-Headers"] = expose
        response.headers.add("Vary", "Origin")
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, If-Match"
            response.headers["Access-Control-Max-Age"] = "600"
        return response
    return cors


def routes(sessions: HttpSessions) -> list[web.RouteDef]:
    async def whip(request: web.Request) -> web.Response:
        return await sessions.start(request, "whip")

    async def whep(request: web.Request) -> web.Response:
        return await sessions.start(request, "whep")

    def options(allow: str, extra: dict[str, str]) -> object:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(status=204, headers={"Allow": allow, **extra})
        return handler

    def not_allowed(allow: str) -> object:
        async def handler(request: web.Request) -> web.Response:
            raise HttpError(405, "method-not-allowed", f"use {allow}", {"Allow": allow})
        return handler

    endpoint_options = options(ENDPOINT_METHODS, {"Accept-Post": "application/sdp"})
    session_options = options(SESSION_METHODS, {})
    defs = []
    for kind, start in (("whip", whip), ("whep", whep)):
        defs += [
            web.post(f"/{kind}/{{room}}", start),
            web.options(f"/{kind}/{{room}}", endpoint_options),
            web.get(f"/{kind}/{{room}}", not_allowed(ENDPOINT_METHODS)),  # GET also answers HEAD
            web.put(f"/{kind}/{{room}}", not_allowed(ENDPOINT_METHODS)),
            web.patch(f"/{kind}/{{room}}/{{session}}", sessions.patch),
            web.delete(f"/{kind}/{{room}}/{{session}}", sessions.delete),
            web.options(f"/{kind}/{{room}}/{{session}}", session_options),
            web.get(f"/{kind}/{{room}}/{{session}}", not_allowed(SESSION_METHODS)),
            web.post(f"/{kind}/{{room}}/{{session}}", not_allowed(SESSION_METHODS)),
            web.get(f"/{kind}/{{room}}/{{session}}/recording", sessions.recording),
            web.options(f"/{kind}/{{room}}/{{session}}/recording", options("GET, OPTIONS", {})),
        ]
    return defs
