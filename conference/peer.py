"""A participant's session in a live room: its token's rights, its one peer
connection, its data channels, and how we talk back to it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from collections.abc import Callable

from rooms import Claims
from sfu import Connection, NegotiationError, NoMediaPort, Producer

from .actors import actor_for
from .clinical_session import CHANNELS as CLINICAL_CHANNELS
from .live_room import LiveRoom
from .protocol import ProtocolError, publish_map, subscribe_map

log = logging.getLogger("telemed.peer")

MAX_DATA_MESSAGE = 16 * 1024
MAX_CHAT_TEXT = 4000
MAX_DATA_BUFFER = 1024 * 1024  # drop relayed messages to a peer that stopped reading


class Peer:
    def __init__(self, claims: Claims, room: LiveRoom, notify: Callable[[dict], None],
                 connection_factory: Callable[[str], Connection], screen: int = 1,
                 address: str = "", peer_id: str | None = None) -> None:
        self.id = peer_id or uuid.uuid4().hex[:12]
        # Told only to this session (in "joined"); a later join must show it to take the seat over.
        self.resume_secret = ""
        self.resume_secret_hash = ""  # what is kept of it outside this process (seat tickets)
        self._new_resume_secret()
        self.claims = claims
        self.actor = actor_for(claims, address)  # who the audit trail names for what this peer does
        self.identity = claims.identity
        self.name = claims.name
        self.grants = claims.grants
        self.room = room
        self.screen = screen
        self._notify = notify
        self._connection_factory = connection_factory
        self.connection: Connection | None = None
        self.control = None
        self.data_dropped = 0
        self.on_connection_lost: Callable[[], None] | None = None
        # Told of each connection a resume replaced, once closed (metrics keep its totals).
        self.on_connection_replaced: Callable[[Connection], None] | None = None
        # Resume (docs/resume.md): between losing its connection and resuming (or the
        # grace period ending) a peer is `reconnecting`; its tracks wait in `held`.
        # `attachment` counts resumes, so a replaced WebSocket no longer speaks for it.
        self.reconnecting = False
        self.attachment = 0
        self.held: dict[str, Producer] = {}  # track id -> producer, detached
        self._claim_held = False  # the first offer after a resume claims or drops them
        self.resumable = True  # by its client (WHIP/WHEP sessions post again instead)
        # Called when a host lets this peer in from the waiting room.
        self.on_admitted: Callable[[], None] | None = None

    @property
    def in_room(self) -> bool:
        """False once removed (left, kicked, resumed elsewhere, or the room closed)."""
        return self.room.peers.get(self.id) is self

    def describe(self) -> dict:
        return {"peer_id": self.id, "identity": self.identity, "name": self.name,
                "role": str(self.claims.role.value), "screen": self.screen,
                "reconnecting": self.reconnecting}

    def notify(self, message: dict) -> None:
        try:
            self._notify(message)
        except Exception:  # a dead socket must not break a broadcast to the others
            log.debug("notify failed for %s", self.id)

    # --- media ---
    def _ensure_connection(self) -> Connection:
        if self.connection is None:
            self.connection = self._connection_factory(self.id)
            self.connection.prioritize([self.room.layout.main_track])
            self.connection.pc.on("datachannel", self._on_datachannel)
            self.connection.on_state = self._on_state
        return self.connection

    def _on_state(self, state: str) -> None:
        if state in ("failed", "closed") and self.on_connection_lost is not None:
            self.on_connection_lost()

    async def offer(self, sdp: str, publish: object, subscribe: object) -> dict:
        """Apply a peer's offer; returns the `answer` message."""
        wanted_publish = publish_map(publish)
        wanted_subscribe = subscribe_map(subscribe)
        if wanted_publish and not self.grants.publish:
            raise ProtocolError("forbidden", "your role may not publish media")
        if wanted_subscribe and not self.grants.subscribe:
            raise ProtocolError("forbidden", "your role may not subscribe to media")
        rejected: dict[str, str] = {}
        producers = {}
        for mid, track_id in wanted_subscribe.items():
            producer = self.room.router.get(track_id)
            if producer is None:
                rejected[mid] = "no such track"
            elif producer.appdata.get("peer_id") == self.id:
                rejected[mid] = "cannot subscribe to your own track"
            else:
                producers[mid] = producer
        # A resumed peer's m-lines name the tracks they published before.
        adopt = {mid: self.held[info["track_id"]] for mid, info in wanted_publish.items()
                 if info.get("track_id") in self.held}
        for info in wanted_publish.values():
            info.pop("track_id", None)
        connection = self._ensure_connection()
        try:
            result = await connection.negotiate(sdp, wanted_publish, producers, adopt)
        except NegotiationError as exc:
            if isinstance(exc, NoMediaPort):  # unusable: the next offer starts a new one
                await self._end_connection()
            raise ProtocolError(exc.code, str(exc)) from None
        for producer in result.adopted:
            self.held.pop(producer.id, None)
        if self._claim_held:
            self._claim_held = False
            self._drop_held()
        for producer in result.added:
            producer.appdata["peer_id"] = self.id
            self.room.router.add(producer)
        for producer in result.removed:
            self.room.router.remove(producer)
        rejected.update(result.rejected)
        published = {p.appdata["mid"]: p.id for p in connection.producers.values()}
        return {"type": "answer", "sdp": result.answer, "rejected": rejected, "published": published}

    def set_tile_size(self, track_id: str, width: int, height: int) -> None:
        """The page shows `track_id` at width x height device pixels (simulcast layer choice)."""
        if self.connection is None or not self.connection.set_tile_size(track_id, width, height):
            raise ProtocolError("not-subscribed", "you receive no such track")

    async def close(self) -> None:
        self._drop_held()
        await self._end_connection()

    async def _end_connection(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            connection.on_state = None
            for producer in await connection.close():
                self.room.router.remove(producer)

    # --- resume (docs/resume.md) ---
    async def suspend(self) -> None:
        """The connection went without a leave: keep the seat and its tracks (detached,
        still in the router with their subscribers) for a resume."""
        self.reconnecting = True
        self._notify = _nowhere  # the old socket is gone or going
        await self._release_connection()

    async def resume(self, claims: Claims, notify: Callable[[dict], None], address: str = "") -> None:
        """A new WebSocket and, next, a new peer connection take this seat over. The
        old socket, if it is still there, hears why it speaks for nobody now."""
        self.notify({"type": "kicked", "reason": "resumed elsewhere"})
        self.attachment += 1
        self._new_resume_secret()
        self.claims = claims
        self.grants = claims.grants  # the credential decides, the new one as the first did
        self.actor = actor_for(claims, address)
        self._notify = notify
        self.reconnecting = False
        self._claim_held = True
        await self._release_connection()

    def proves(self, resume_secret: object) -> bool:
        """Whether ``resume_secret`` is this seat's (compared as hashes, in constant time)."""
        if not isinstance(resume_secret, str) or not self.resume_secret_hash:
            return False
        return hmac.compare_digest(secret_hash(resume_secret), self.resume_secret_hash)

    def _new_resume_secret(self) -> None:
        self.resume_secret = secrets.token_urlsafe(24)
        self.resume_secret_hash = secret_hash(self.resume_secret)

    async def _release_connection(self) -> None:
        self.control = None
        if self.connection is None:
            return
        # Synchronously, so that an offer on the new connection finds the tracks held.
        connection, self.connection = self.connection, None
        connection.on_state = None
        for producer in connection.release_producers():
            self.held[producer.id] = producer
        if self.room.clinical is not None:
            self.room.clinical.suspended(self)
        await connection.close()
        if self.on_connection_replaced is not None:
            self.on_connection_replaced(connection)

    def _drop_held(self) -> None:
        """Tracks a resumed peer did not publish again end now."""
        held, self.held = self.held, {}
        for producer in held.values():
            self.room.router.remove(producer)

    # --- data channels ---
    def _on_datachannel(self, channel) -> None:
        clinical = self.room.clinical
        if channel.label == "control":
            self.control = channel
            channel.on("message", lambda message: self._on_control(channel, message))
            if clinical is not None:
                clinical.control_opened(self)
        elif channel.label in CLINICAL_CHANNELS and clinical is not None:
            clinical.attach(self, channel)
        else:
            log.info("closing unknown data channel %r from %s", channel.label[:64], self.id)
            channel.close()

    def _on_control(self, channel, raw: object) -> None:
        try:
            if self.room.clinical is not None and self.room.clinical.take(self, raw):
                return
            message = self._check_data(raw)
            self.room.relay(self, message)
        except ProtocolError as exc:
            self._send_on(channel, {"type": "error", "code": exc.code, "error": exc.message})
        except Exception:
            log.exception("control message failed for %s", self.id)
            self._send_on(channel, {"type": "error", "code": "internal", "error": "message not delivered"})

    def _check_data(self, raw: object) -> dict:
        if not isinstance(raw, str):
            raise ProtocolError("bad-request", "the control channel carries JSON text only")
        if len(raw) > MAX_DATA_MESSAGE:
            raise ProtocolError("too-large", f"data messages are limited to {MAX_DATA_MESSAGE} bytes")
        if not self.grants.data:
            raise ProtocolError("forbidden", "your role may not send data")
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):
            raise ProtocolError("bad-json", "data message is not valid JSON") from None
        if not isinstance(message, dict):
            raise ProtocolError("bad-request", "data message must be a JSON object")
        kind = message.get("type")
        if kind == "chat":
            text = message.get("text")
            if not isinstance(text, str) or not text.strip() or len(text) > MAX_CHAT_TEXT:
                raise ProtocolError("bad-request", f"chat 'text' must be 1..{MAX_CHAT_TEXT} characters")
            return {"type": "chat", "text": text}
        if kind == "app":
            if not isinstance(message.get("data"), dict):
                raise ProtocolError("bad-request", "app 'data' must be a JSON object")
            return {"type": "app", "data": message["data"]}
        raise ProtocolError("unknown-type", f"unknown data message type {str(kind)[:32]!r}")

    def send_data(self, message: dict) -> None:
        if self.control is not None:
            self._send_on(self.control, message)

    def _send_on(self, channel, message: dict) -> None:
        if channel.readyState != "open":
            return
        if channel.bufferedAmount > MAX_DATA_BUFFER:
            self._dropped("its channel's buffer is full")
            return
        try:
            channel.send(json.dumps(message))
        except Exception as exc:
            self._dropped(str(exc))

    def _dropped(self, why: str) -> None:
        self.data_dropped += 1
        if self.data_dropped in (1, 10, 100) or self.data_dropped % 1000 == 0:  # said, never a flood
            log.warning("a relayed message to peer %s was dropped (%d so far): %s", self.id, self.data_dropped, why)


async def close_quietly(peer: Peer) -> None:
    try:
        await asyncio.wait_for(peer.close(), timeout=10)
    except Exception:
        log.exception("closing peer %s failed", peer.id)


def secret_hash(secret: str) -> str:
    """A resume secret as kept at rest: random 192-bit secrets need no slow hash."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _nowhere(message: dict) -> None:
    """Where a reconnecting peer's notices go: its next socket gets the state on `joined`."""
