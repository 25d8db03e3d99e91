"""A room while people are in it: its peers, its router, and what they share."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rooms import Layout
from sfu import Producer, Router

from .waiting_room import WaitingRoom

if TYPE_CHECKING:
    from .clinical_session import ClinicalSession
    from .peer import Peer

log = logging.getLogger("telemed.room")

# Something outside the peers that follows a room's events (the recorder, the streamer).
RoomListener = Callable[[dict], None]


class LiveRoom:
    def __init__(self, name: str, layout: Layout) -> None:
        self.name = name
        self.router = Router()
        self.peers: dict[str, Peer] = {}
        self.layout = layout
        self.data_seq = 0
        self.muted: set[str] = set()
        # Host controls, for as long as the consult runs (they go when the room empties).
        self.locked = False
        self.waiting = WaitingRoom()
        self.admitted: set[str] = set()  # identities that were in: their reconnects skip the queue
        self.barred: set[str] = set()    # identities a host removed: refused until the room empties
        self.clinical: ClinicalSession | None = None  # set by LiveRooms
        self._listeners: list[RoomListener] = []
        self.router.on_change(self._producers_changed)

    # --- membership ---
    def add(self, peer: Peer) -> None:
        self.peers[peer.id] = peer
        self.admitted.add(peer.identity)
        self.broadcast({"type": "participant-joined", "participant": peer.describe()}, exclude=peer)
        if self.clinical is not None:
            self.clinical.joined(peer)

    def restore(self, peer: Peer) -> None:
        """A seat carried over from a node that died (conference/seat_ticket.py): back in
        the room, reconnecting, its tracks listed; nobody is told it joined."""
        self.peers[peer.id] = peer
        self.admitted.add(peer.identity)
        for producer in peer.held.values():
            self.router.add(producer)

    def reconnecting(self, peer: Peer) -> None:
        """Its connection went; it may resume within the grace period (docs/resume.md)."""
        self.broadcast({"type": "participant-reconnecting", "peer_id": peer.id}, exclude=peer)

    def reconnected(self, peer: Peer) -> None:
        """It resumed: the same seat, tracks and id as before."""
        self.broadcast({"type": "participant-reconnected", "participant": peer.describe()}, exclude=peer)

    def wait(self, peer: Peer) -> None:
        """Put a guest in the waiting room and tell the hosts it knocked."""
        self.waiting.add(peer)
        self.tell_hosts({"type": "knock", "participant": peer.describe()})

    async def remove(self, peer: Peer) -> None:
        if self.waiting.pop(peer.id) is not None:
            self.tell_hosts({"type": "knock-withdrawn", "peer_id": peer.id, "outcome": "left"})
            return
        if self.peers.pop(peer.id, None) is None:
            return
        for producer in list(self.router.producers.values()):
            if producer.appdata.get("peer_id") == peer.id:
                self.router.remove(producer)
        if self.clinical is not None:
            self.clinical.left(peer)
        self.broadcast({"type": "participant-left", "peer_id": peer.id})

    @property
    def empty(self) -> bool:
        return not self.peers and not len(self.waiting)

    def hosts(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.grants.admin]

    def tell_hosts(self, message: dict) -> None:
        """What only hosts see (knocks at the waiting room); listeners see it too."""
        for peer in self.hosts():
            peer.notify(message)
        self.emit(message)

    def participants(self) -> list[dict]:
        return [p.describe() for p in self.peers.values()]

    def tracks(self) -> list[dict]:
        return [self.describe_track(p) for p in self.router.producers.values()]

    def describe_track(self, producer: Producer) -> dict:
        return {
            "id": producer.id, "peer_id": producer.appdata.get("peer_id"), "kind": producer.kind,
            "source": producer.appdata.get("source", "camera"), "label": producer.appdata.get("label", ""),
            "codec": producer.codec.mime_type, "muted": producer.id in self.muted,
        }

    # --- events ---
    def listen(self, listener: RoomListener) -> Callable[[], None]:
        """Follow every room event (what peers are told, and clinical notices); returns
        the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def emit(self, event: dict) -> None:
        """Tell the listeners; a failing listener must not break the room."""
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("room listener failed on %s", event.get("type"))

    def broadcast(self, message: dict, exclude: Peer | None = None) -> None:
        for peer in list(self.peers.values()):
            if peer is not exclude:
                peer.notify(message)
        self.emit(message)

    def _producers_changed(self, event: str, producer: Producer) -> None:
        if event == "added":
            self.broadcast({"type": "track-published", "track": self.describe_track(producer)})
        else:
            self.muted.discard(producer.id)
            self.broadcast({"type": "track-unpublished", "track_id": producer.id})

    def set_muted(self, producer: Producer, muted: bool) -> None:
        (self.muted.add if muted else self.muted.discard)(producer.id)
        # A muted microphone is not forwarded at all, whoever muted it. A muted camera
        # already sends the browser's black frames, and pausing video would need a
        # keyframe on resume, so video keeps flowing.
        if producer.kind == "audio":
            producer.paused = muted
        self.broadcast({"type": "track-updated", "track": self.describe_track(producer)})

    def set_locked(self, locked: bool, by: dict) -> None:
        self.locked = locked
        self.broadcast({"type": "room-locked", "locked": locked, "by": by})

    def set_layout(self, layout: Layout) -> None:
        self.layout = layout
        for peer in self.peers.values():  # the main camera gets bandwidth first
            if peer.connection is not None:
                peer.connection.prioritize([layout.main_track])
        self.broadcast({"type": "layout", "layout": layout.to_dict()})

    def main_producers(self) -> list[Producer]:
        """What a WHEP viewer gets: the pinned main video (else the first camera) and audio."""
        producers = list(self.router.producers.values())
        video = self.router.get(self.layout.main_track) if self.layout.main_track else None
        if video is None or video.kind != "video":
            video = next((p for p in producers if p.kind == "video"), None)
        audio = None
        if video is not None:
            audio = next((p for p in producers if p.kind == "audio"
                          and p.appdata.get("peer_id") == video.appdata.get("peer_id")), None)
        audio = audio or next((p for p in producers if p.kind == "audio"), None)
        return [p for p in (video, audio) if p is not None]

    def relay(self, sender: Peer, message: dict) -> dict:
        """Stamp a data message and send it to everyone else's control channel."""
        self.data_seq += 1
        stamped = {**message, "from": sender.id, "name": sender.name, "seq": self.data_seq,
                   "t": round(time.monotonic(), 3)}
        for peer in list(self.peers.values()):
            if peer is not sender:
                peer.send_data(stamped)
        return stamped


class LiveRooms:
    """The live rooms of this node, created on first join, dropped when empty."""

    def __init__(self, clinical: Callable[[LiveRoom, float, frozenset[str]], ClinicalSession | None] | None = None
                 ) -> None:
        self.rooms: dict[str, LiveRoom] = {}
        self._clinical = clinical

    def get_or_create(self, name: str, layout: Layout, created_at: float = 0.0,
                      carried: frozenset[str] = frozenset()) -> LiveRoom:
        """``carried``: the peer ids of seats about to be taken over from a node that died
        (docs/multinode.md "A node lost"): their ECG streams go on."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = LiveRoom(name, layout)
            if self._clinical is not None:
                room.clinical = self._clinical(room, created_at, carried)
        return room

    def discard_if_empty(self, room: LiveRoom) -> None:
        if room.empty and self.rooms.get(room.name) is room:
            room.router.close()
            if room.clinical is not None:
                room.clinical.close()
            del self.rooms[room.name]
