"""The WebSocket session: a thin loop that decodes messages and calls the peer."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from aiohttp import WSMsgType, web
from redis.exceptions import RedisError

from clinical.storage import StorageUnavailable
from conference.actors import actor_for
from conference.host_controls import ENDED, REMOVED
from conference.peer import Peer
from conference.protocol import MAX_WS_MESSAGE, ProtocolError, check, decode
from rooms import Claims, Layout, RoomNotFound, TokenError

from .cluster_node import Elsewhere
from .http_errors import HttpError
from .origins import OriginPolicy
from .server import Server

log = logging.getLogger("telemed.ws")

MAX_MESSAGES_PER_SECOND = 50
# A refused Origin has the cluster's node list read again, at most this often (s).
ORIGIN_RECHECK_AFTER = 0.25
# After a host's refusal, removal or end of the consult the server closes the socket:
# nothing is left for it to do. (A socket replaced by a resumed session stays open,
# answering `not-joined`, until its client closes it.)
HOST_KICKS = frozenset({REMOVED, ENDED})
HOST_ACTIONS = frozenset({"admit", "deny", "lock", "remove", "mute-participant", "end"})
_CLOSE = object()  # queued after a last message: close the socket once that is sent


class Session:
    """One WebSocket: before `join` it has no peer; afterwards it speaks for one."""

    def __init__(self, server: Server, ws: web.WebSocketResponse, address: str = "") -> None:
        self.server = server
        self.ws = ws
        self.address = address
        self.peer: Peer | None = None
        self.claims: Claims | None = None  # of the token this session joined with
        self.attachment = 0  # the peer's, when this socket joined or resumed it
        self._outbox: asyncio.Queue[dict | object | None] = asyncio.Queue(maxsize=1000)
        self._budget = MAX_MESSAGES_PER_SECOND
        self._budget_at = 0.0
        self._expiry: asyncio.Task | None = None

    def notify(self, message: dict) -> None:
        """Queue a message; a client that stops reading for 1000 messages is dropped."""
        try:
            self._outbox.put_nowait(message)
        except asyncio.QueueFull:
            asyncio.ensure_future(self.ws.close(code=1008, message=b"not reading"))

    async def writer(self) -> None:
        while (message := await self._outbox.get()) is not None:
            if self.ws.closed:
                return
            if message is _CLOSE:
                await self.ws.close(code=4001, message=b"token expired")
                return
            try:
                await self.ws.send_str(json.dumps(message))
            except (ConnectionError, RuntimeError):
                return
            kind = message.get("type")
            if kind == "moved":  # the client reconnects to the node hosting the room
                await self.ws.close(code=1000, message=b"moved")
                return
            if kind == "denied" or (kind == "kicked" and message.get("reason") in HOST_KICKS):
                await self.ws.close(code=1000, message=kind.encode())
                return

    def _rate_ok(self) -> bool:
        now = asyncio.get_running_loop().time()
        self._budget = min(MAX_MESSAGES_PER_SECOND, self._budget + (now - self._budget_at) * MAX_MESSAGES_PER_SECOND)
        self._budget_at = now
        if self._budget < 1:
            return False
        self._budget -= 1
        return True

    async def handle(self, raw: str) -> None:
        request_id = None
        try:
            message = decode(raw)
            request_id = message.get("id")
            if not isinstance(request_id, (str, int, type(None))):
                request_id = None
            if not self._rate_ok():
                raise ProtocolError("rate-limited", "too many messages; slow down")
            check(message)
            reply = await self.dispatch(message)
            if reply is not None:
                if request_id is not None:
                    reply["id"] = request_id
                self.notify(reply)
        except (ProtocolError, StorageUnavailable) as exc:
            self.notify({"type": "error", "code": exc.code, "error": exc.message, "id": request_id})
        except RedisError as exc:  # the shared store of a cluster, restarting say
            log.error("Redis unreachable: %r", exc)
            self.notify({"type": "error", "code": "store-unavailable", "id": request_id,
                         "error": "the shared store is unreachable; try again shortly"})
        except Exception:
            log.exception("error handling a message")
            self.notify({"type": "error", "code": "internal", "error": "internal error", "id": request_id})

    async def dispatch(self, message: dict) -> dict | None:
        kind = message["type"]
        if kind == "ping":
            return {"type": "pong"}
        if kind == "join":
            return await self.join(message)
        peer = self.peer
        if peer is None:
            raise ProtocolError("not-joined", "send 'join' with a token first")
        if peer.attachment != self.attachment:
            raise ProtocolError("not-joined", "this session was resumed on another connection")
        if not peer.in_room and kind != "leave":
            if peer.id in peer.room.waiting:
                raise ProtocolError("waiting", "wait until a host lets you in")
            # Removed, resumed elsewhere or the room closed: the socket speaks for nobody now.
            raise ProtocolError("not-joined", "this session has left the room")
        if kind in HOST_ACTIONS:
            return await self.host_action(peer, kind, message)
        if kind == "offer":
            answer = await peer.offer(message["sdp"], message.get("publish"), message.get("subscribe"))
            await self.server.seat_changed(peer)  # its tracks, as another node would resume them
            return answer
        if kind == "candidate":
            return await self.candidate(peer, message)
        if kind == "mute":
            producer = peer.room.router.get(message["track_id"])
            if producer is None or producer.appdata.get("peer_id") != peer.id:
                raise ProtocolError("not-found", "you have no such track")
            peer.room.set_muted(producer, message["muted"])
            return None
        if kind == "tile-size":  # sizes checked against conference/message_schemas/tile-size.json
            peer.set_tile_size(message["track_id"], int(message["width"]), int(message["height"]))
            return None
        if kind == "set-layout":
            return await self.set_layout(peer, message)
        if kind == "refresh-token":
            return await self.refresh_token()
        if kind == "leave":
            await self.leave()
            await self.ws.close()
            return None
        raise ProtocolError("unknown-type", f"unknown message type {kind[:32]!r}")

    async def join(self, message: dict) -> dict:
        if self.peer is not None:
            raise ProtocolError("already-joined", "this socket already joined")
        # Types and sizes: conference/message_schemas/join.json, checked in handle().
        screen = message.get("screen", 1)
        resume, resume_secret = message.get("resume"), message.get("resume_secret")
        try:
            claims = await self.server.verify(message["token"])
        except TokenError as exc:
            raise ProtocolError("unauthorized" if exc.status == 401 else "forbidden", exc.message) from None
        try:
            self.peer = peer = await self.server.join(claims, self.notify, screen, resume,
                                                      resume_secret=resume_secret, address=self.address)
        except Elsewhere as exc:
            # Join again there with the same message (the token holds on every node).
            return {"type": "moved", "url": exc.url, "node": exc.node, "room": claims.room}
        self.claims = claims
        self.attachment = peer.attachment
        # The media path failing (ICE) is, like the socket closing, a chance to resume.
        peer.on_connection_lost = self._lost
        self._watch_expiry()
        if peer.id in peer.room.waiting:
            peer.on_admitted = lambda: self.notify(self.joined(peer))
            return {"type": "waiting", "peer_id": peer.id, "room": peer.room.name, "name": peer.name}
        return self.joined(peer)

    def joined(self, peer: Peer) -> dict:
        room = peer.room
        claims = peer.claims
        message = {
            "type": "joined", "peer_id": peer.id, "identity": peer.identity, "name": peer.name,
            "role": claims.role.value, "grants": claims.grants.to_dict(), "room": room.name,
            "token_expires_at": claims.expires_at, "resume_secret": peer.resume_secret,
            "resumed": peer.attachment > 0, "resume_grace": self.server.settings.resume_grace,
            "participants": [p for p in room.participants() if p["peer_id"] != peer.id],
            "tracks": room.tracks(), "layout": room.layout.to_dict(), "locked": room.locked,
            "live": self.server.streams.state(room.name),
            "ice_servers": self.server.ice_servers.for_identity(peer.identity),
            "recording": recording.announcement() if (recording := self.server.recordings.active(room.name)) else None,
        }
        if claims.grants.admin:
            message["waiting"] = room.waiting.describe()
        return message

    async def host_action(self, peer: Peer, kind: str, message: dict) -> dict:
        """docs/signaling.md "Host controls"; HostControls checks the admin grant."""
        controls = self.server.host_controls
        if kind == "lock":
            await controls.lock(peer, message["locked"])
            await self.server.controls_changed(peer.room)
            return {"type": "ok", "action": kind}
        if kind == "end":
            await controls.end(peer)
            return {"type": "ok", "action": kind}
        target = message["peer_id"]
        if kind == "admit":
            controls.check(peer)
            room = await self.server.room(peer.room.name)
            if room is None:
                raise ProtocolError("not-found", "the room no longer exists")
            controls.admit(peer, target, room.settings.max_participants)
            await self.server.controls_changed(peer.room)  # and the guest's seat is resumable now
        elif kind == "deny":
            controls.deny(peer, target)
        elif kind == "remove":
            await controls.remove(peer, target)
            await self.server.controls_changed(peer.room)
        else:
            return {"type": "ok", "action": kind, "track_ids": controls.mute(peer, target)}
        return {"type": "ok", "action": kind}

    async def refresh_token(self) -> dict:
        """A fresh token with the same claims, for a reconnect after the first expired.

        Only a joined session gets one, so a peer who left or was removed can no
        longer extend its access; the room's password is not asked again. A revoked
        grant, a closed room or the maximum session age end the refreshing.
        """
        try:
            token, fresh = await self.server.refresh(self.claims)
        except TokenError as exc:
            raise ProtocolError("unauthorized", exc.message) from None
        # The same grant (token id) extended: on record before it is handed out.
        await self.server.audit.record("token-minted", actor_for(fresh, self.address), fresh.room,
                                       fresh.token_id, via="refresh", expires_at=fresh.expires_at)
        self.claims = fresh
        self._watch_expiry()
        return {"type": "token", "token": token, "expires_at": fresh.expires_at}

    def _watch_expiry(self) -> None:
        """Close the session when its token expires unless it was refreshed before."""
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.ensure_future(self._expire_at(self.claims.expires_at))

    async def _expire_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        self._expiry = None  # leave() below must not cancel this very task
        peer = self.peer
        if peer is None:
            return
        if peer.in_room:  # not already removed some other way
            self.notify({"type": "kicked", "reason": "token expired"})
            await self.leave()
        try:
            self._outbox.put_nowait(_CLOSE)
        except asyncio.QueueFull:
            await self.ws.close(code=4001, message=b"token expired")

    async def candidate(self, peer: Peer, message: dict) -> None:
        if peer.connection is None:
            raise ProtocolError("bad-request", "send an offer before candidates")
        try:
            await peer.connection.add_ice_candidate(message.get("candidate") or "", message.get("sdpMid"),
                                                    message.get("sdpMLineIndex"))
        except ValueError as exc:
            raise ProtocolError("bad-candidate", str(exc)) from None
        return None

    async def set_layout(self, peer: Peer, message: dict) -> None:
        if not peer.grants.admin:
            raise ProtocolError("forbidden", "only the host may change the layout")
        try:
            layout = Layout.from_dict(message.get("layout"))
            stored = await self.server.store.set_layout(peer.room.name, layout)
        except ValueError as exc:
            raise ProtocolError("bad-request", f"invalid layout: {exc}") from None
        except RoomNotFound:
            raise ProtocolError("not-found", "the room no longer exists") from None
        peer.room.set_layout(stored)
        return None

    async def close_unless_joined(self) -> None:
        """An unjoined socket holds a connection and costs nothing to open: give it
        ``ws_join_timeout`` seconds, then say why and close it."""
        if self.peer is not None or self.ws.closed:
            return
        timeout = self.server.settings.ws_join_timeout
        try:
            await self.ws.send_str(json.dumps({"type": "error", "code": "join-timeout",
                                               "error": f"no 'join' within {timeout:g} s"}))
        except (ConnectionError, RuntimeError):
            pass
        await self.ws.close(code=1008, message=b"join-timeout")

    async def leave(self) -> None:
        """A leave: asked for, or the token expired."""
        peer = self._release()
        if peer is not None:
            await self.server.leave(peer)

    async def disconnected(self) -> None:
        """The socket closed without a leave: the seat waits for a resume (docs/resume.md)."""
        peer = self._release()
        if peer is not None:
            await self.server.suspend(peer)

    def _lost(self) -> None:
        """The media path failed (ICE): close the socket too, so that the client
        resumes on a new one and the seat waits for it (`disconnected`)."""
        peer = self.peer
        if peer is not None and peer.attachment == self.attachment:
            asyncio.ensure_future(self.ws.close(code=4002, message=b"media connection lost: resume"))

    def _release(self) -> Peer | None:
        """The peer this socket still speaks for, and it no longer does."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        peer, self.peer = self.peer, None
        if peer is None or peer.attachment != self.attachment:
            return None  # resumed on another socket: that one speaks for it now
        peer.on_connection_lost = None
        return peer


def route(server: Server, app: web.Application) -> web.RouteDef:
    sockets: set[web.WebSocketResponse] = set()
    origins = OriginPolicy(server.settings.ws_origins, server.node.urls)

    async def close_all(app: web.Application) -> None:
        for ws in list(sockets):
            await ws.close(code=1001, message=b"server shutting down")

    app.on_shutdown.append(close_all)

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        # aiohttp closes (1009) beyond 4x our limit; below it we answer with an error instead.
        if not origins.allows(request):
            # Perhaps a page of a node that joined since our last heartbeat: look again.
            await server.node.refresh_urls(max_age=ORIGIN_RECHECK_AFTER)
            if not origins.allows(request):
                raise HttpError(403, "forbidden-origin", "pages from this origin may not open the WebSocket")
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4 * MAX_WS_MESSAGE)
        await ws.prepare(request)
        session = Session(server, ws, request.remote or "")
        writer = asyncio.ensure_future(session.writer())
        join_deadline = asyncio.get_running_loop().call_later(
            server.settings.ws_join_timeout, lambda: asyncio.ensure_future(session.close_unless_joined()))
        sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await session.handle(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    session.notify({"type": "error", "code": "bad-request", "error": "binary frames are not accepted"})
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            join_deadline.cancel()
            sockets.discard(ws)
            await session.disconnected()
            writer.cancel()
        return ws

    return web.get("/ws", websocket)
