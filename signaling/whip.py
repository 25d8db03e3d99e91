"""WHIP (RFC 9725) ingest and WHEP egress: HTTP-only WebRTC sessions for standard
tools such as OBS, GStreamer and simple players."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from conference.peer import Peer
from conference.protocol import ProtocolError
from sfu import parse_offer

from .auth import bearer, claims_for
from .http_errors import HttpError
from .server import Server

log = logging.getLogger("telemed.whip")

MAX_SDP = 128 * 1024


class HttpSessions:
    """WHIP/WHEP sessions by id; each is a peer with no WebSocket."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.sessions: dict[str, Peer] = {}

    async def start(self, request: web.Request, kind: str) -> web.Response:
        room = request.match_info["room"]
        claims = await claims_for(self.server, bearer(request), room)
        if kind == "whip" and not claims.grants.publish:
            raise HttpError(403, "forbidden", "this token may not publish")
        if kind == "whep" and not claims.grants.subscribe:
            raise HttpError(403, "forbidden", "this token may not subscribe")
        if request.content_type != "application/sdp":
            raise HttpError(415, "unsupported-media-type", "send the offer as application/sdp")
        offer = await self._read_sdp(request)
        try:
            _, media = parse_offer(offer)
        except ValueError as exc:
            raise HttpError(400, "bad-sdp", str(exc)) from None
        try:
            peer = await self.server.join(claims, notify=lambda message: None, can_wait=False)
        except ProtocolError as exc:
            status = {"not-found": 404, "room-full": 409}.get(exc.code, 403)  # else: a host's say
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
            status = {"not-found": 404, "codec-mismatch": 406}.get(exc.code, 400)
            raise HttpError(status, exc.code, exc.message) from None
        except BaseException:
            await self.server.leave(peer)
            raise
        self.sessions[peer.id] = peer
        peer.on_connection_lost = lambda: asyncio.ensure_future(self.stop(peer.id))
        location = f"/{kind}/{room}/{peer.id}"
        return web.Response(status=201, text=answer["sdp"], content_type="application/sdp",
                            headers={"Location": location, "ETag": f'"{peer.id}"'})

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

    async def _read_sdp(self, request: web.Request) -> str:
        raw = await request.content.read(MAX_SDP + 1)
        if len(raw) > MAX_SDP:
            raise HttpError(413, "too-large", "SDP too large")
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
        fragment = await self._read_sdp(request)
        mid = None
        for line in fragment.splitlines():
            line = line.strip()
            if line.startswith("a=ice-ufrag:") and peer.connection is not None:
                ours = peer.connection.pc.remoteDescription
                if ours is not None and line not in ours.sdp:
                    raise HttpError(422, "ice-restart-unsupported", "ICE restart is not supported; start a new session")
            elif line.startswith("a=mid:"):
                mid = line[6:]
            elif line.startswith("a=candidate:") and peer.connection is not None:
                try:
                    await peer.connection.add_ice_candidate(line[2:], mid, None if mid else 0)
                except ValueError as exc:
                    raise HttpError(400, "bad-candidate", str(exc)) from None
        return web.Response(status=204)

    async def delete(self, request: web.Request) -> web.Response:
        peer = await self._session(request)
        await self.stop(peer.id)
        return web.Response(status=200)

    async def stop(self, session_id: str) -> None:
        peer = self.sessions.pop(session_id, None)
        if peer is not None:
            await self.server.leave(peer)

    async def close(self) -> None:
        for session_id in list(self.sessions):
            await self.stop(session_id)


def routes(sessions: HttpSessions) -> list[web.RouteDef]:
    async def whip(request: web.Request) -> web.Response:
        return await sessions.start(request, "whip")

    async def whep(request: web.Request) -> web.Response:
        return await sessions.start(request, "whep")

    async def options(request: web.Request) -> web.Response:
        return web.Response(status=204, headers={
            "Accept-Post": "application/sdp", "Allow": "OPTIONS, POST, PATCH, DELETE"})

    return [
        web.post("/whip/{room}", whip), web.post("/whep/{room}", whep),
        web.options("/whip/{room}", options), web.options("/whep/{room}", options),
        web.patch("/whip/{room}/{session}", sessions.patch),
        web.patch("/whep/{room}/{session}", sessions.patch),
        web.delete("/whip/{room}/{session}", sessions.delete),
        web.delete("/whep/{room}/{session}", sessions.delete),
    ]
