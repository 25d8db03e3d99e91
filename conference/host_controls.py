"""What a host may do to a live room: admit or deny a waiting guest, lock the room,
remove a participant, mute a participant's microphone, end the consult for everyone.

Only a peer whose token carries the admin grant may act. Every action is broadcast
as a room event carrying `by` (the host's peer id, identity and name), so the
recorder and others can follow it through `LiveRoom.listen`. Locking and removing
are written to the audit log first: an action that is not on record is not done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from clinical.audit_trail import AuditTrail
from clinical.storage import StorageUnavailable
from rooms import Claims

from .live_room import LiveRoom
from .peer import Peer
from .protocol import ProtocolError

ENDED = "ended by host"
REMOVED = "removed by the host"
DENIED = "The host did not let you into this consult."

# Takes a peer out of its room and closes its media (the composition root's leave).
Leave = Callable[[Peer], Awaitable[None]]
# Makes a token (and every refresh of it) unusable from now on.
Revoke = Callable[[Claims], Awaitable[None]]


def actor(peer: Peer) -> dict:
    return {"peer_id": peer.id, "identity": peer.identity, "name": peer.name}


class HostControls:
    def __init__(self, leave: Leave, revoke: Revoke | None = None, audit: AuditTrail | None = None) -> None:
        self._leave = leave
        self._revoke = revoke
        self._audit = audit

    async def _on_record(self, host: Peer, action: str, object_id: str, **details: object) -> None:
        if self._audit is None:
            return
        try:
            await self._audit.record(action, host.actor, host.room.name, object_id, **details)
        except StorageUnavailable:
            raise ProtocolError("storage-unavailable", "the audit log cannot be written; nothing was changed") from None

    @staticmethod
    def check(host: Peer) -> LiveRoom:
        if not host.grants.admin:
            raise ProtocolError("forbidden", "only a host may do this")
        return host.room

    # --- the waiting room ---
    def admit(self, host: Peer, peer_id: str, max_participants: int) -> None:
        """Let the guest in, with every other screen of their seat that waits too."""
        room = self.check(host)
        seat = self._waiting_seat(room, peer_id)
        if len(room.peers) + len(seat) > max_participants:
            raise ProtocolError("room-full", "the room is full")
        for guest in seat:
            room.waiting.pop(guest.id)
            # The guest hears `joined` before anyone hears `participant-joined` about it.
            if guest.on_admitted is not None:
                guest.on_admitted()
            room.add(guest)
            room.tell_hosts({"type": "knock-withdrawn", "peer_id": guest.id, "outcome": "admitted",
                             "by": actor(host)})

    def deny(self, host: Peer, peer_id: str) -> None:
        room = self.check(host)
        for guest in self._waiting_seat(room, peer_id):
            room.waiting.pop(guest.id)
            guest.notify({"type": "denied", "reason": DENIED})
            room.tell_hosts({"type": "knock-withdrawn", "peer_id": guest.id, "outcome": "denied",
                             "by": actor(host)})

    @staticmethod
    def _waiting_seat(room: LiveRoom, peer_id: str) -> list[Peer]:
        if peer_id not in room.waiting:
            raise ProtocolError("not-found", "nobody with that id is waiting")
        identity = next(g.identity for g in room.waiting.guests() if g.id == peer_id)
        return [g for g in room.waiting.guests() if g.identity == identity]

    # --- the room ---
    async def lock(self, host: Peer, locked: bool) -> None:
        room = self.check(host)
        await self._on_record(host, "room-lock" if locked else "room-unlock", f"room/{room.name}")
        room.set_locked(locked, actor(host))

    async def remove(self, host: Peer, peer_id: str) -> None:
        """Kick the person behind `peer_id` (every screen of their seat) and revoke
        their tokens; they cannot come back into this consult under that identity."""
        room = self.check(host)
        target = room.peers.get(peer_id)
        if target is None:
            raise ProtocolError("not-found", "no such participant")
        if target.identity == host.identity:
            raise ProtocolError("bad-request", "you cannot remove yourself; leave instead")
        await self._on_record(host, "participant-removed", f"identity/{target.identity}",
                              removed_name=target.name, removed_token_id=target.claims.token_id)
        seat = [p for p in room.peers.values() if p.identity == target.identity]
        room.barred.add(target.identity)
        room.admitted.discard(target.identity)
        room.broadcast({"type": "participant-removed", "peer_id": target.id, "identity": target.identity,
                        "name": target.name, "by": actor(host)})
        for peer in seat:
            if self._revoke is not None:
                await self._revoke(peer.claims)
            peer.notify({"type": "kicked", "reason": REMOVED})
            await self._leave(peer)

    def mute(self, host: Peer, peer_id: str) -> list[str]:
        """Stop forwarding the participant's microphone. Only they can unmute it
        (with `mute`), as in Zoom and Jitsi: a host cannot open someone's microphone."""
        room = self.check(host)
        target = room.peers.get(peer_id)
        if target is None:
            raise ProtocolError("not-found", "no such participant")
        muted = []
        for producer in list(room.router.producers.values()):
            if producer.kind == "audio" and producer.appdata.get("peer_id") == target.id:
                room.set_muted(producer, True)
                muted.append(producer.id)
        if not muted:
            raise ProtocolError("not-found", "that participant publishes no microphone")
        room.broadcast({"type": "participant-muted", "peer_id": target.id, "track_ids": muted,
                        "by": actor(host)})
        return muted

    async def end(self, host: Peer) -> None:
        """Everyone out, the waiting guests too; the live room closes when empty."""
        room = self.check(host)
        room.broadcast({"type": "consult-ended", "by": actor(host)})
        for guest in room.waiting.guests():
            room.waiting.pop(guest.id)
            guest.notify({"type": "denied", "reason": ENDED})
            await self._leave(guest)
        for peer in list(room.peers.values()):
            peer.notify({"type": "kicked", "reason": ENDED})
            await self._leave(peer)
