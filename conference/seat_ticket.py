"""A seat described for another node (docs/multinode.md "A node lost"): what its host
keeps in the shared store while the seat lives, and how the room's next host rebuilds
it, reconnecting, so that its client resumes there as on a network change
(docs/resume.md). The resume secret is kept only as its hash.

Every ticket also carries the room's host controls as they stood when it was written
(``room``: locked, the identities removed and those let in, stamped by wall clock), so
that the next host restores them from the newest ticket: they live as long as a seat
does, as they would on one node (they go when the room empties)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from rooms import Claims, Grants, Role
from sfu import Codec, Connection, Producer

from .live_room import LiveRoom
from .peer import Peer

VERSION = 1


def ticket_of(peer: Peer) -> dict[str, Any]:
    room, claims = peer.room, peer.claims
    tracks = []
    for producer in room.router.producers.values():
        if producer.appdata.get("peer_id") != peer.id:
            continue
        codec = producer.codec
        tracks.append({
            "id": producer.id, "source": producer.appdata.get("source", "camera"),
            "label": producer.appdata.get("label", ""), "muted": producer.id in room.muted,
            "codec": {"mime_type": codec.mime_type, "clock_rate": codec.clock_rate,
                      "channels": codec.channels, "parameters": dict(codec.parameters)},
            "rids": [layer.rid for layer in producer.layers] or None,
        })
    return {
        "v": VERSION, "peer_id": peer.id, "secret_hash": peer.resume_secret_hash, "screen": peer.screen,
        "claims": {"identity": claims.identity, "room": claims.room, "role": claims.role.value,
                   "grants": claims.grants.to_dict(), "name": claims.name, "expires_at": claims.expires_at,
                   "token_id": claims.token_id, "credential": claims.credential,
                   "incarnation": claims.incarnation, "auth_time": claims.auth_time},
        "tracks": tracks, "room": controls_of(room),
    }


def controls_of(room: LiveRoom) -> dict[str, Any]:
    return {"locked": room.locked, "barred": sorted(room.barred), "admitted": sorted(room.admitted),
            "at": time.time()}  # wall clock: the tickets compared were written by different nodes


def restore_controls(room: LiveRoom, tickets: Iterable[dict[str, Any]]) -> None:
    """The host controls of the newest ticket that has them, back in ``room``.
    ValueError/KeyError/TypeError if that ticket's are malformed."""
    newest = max((t["room"] for t in tickets if isinstance(t.get("room"), dict)),
                 key=lambda c: float(c["at"]), default=None)
    if newest is None:
        return
    room.locked = bool(newest["locked"])
    room.barred.update(str(i) for i in newest["barred"])
    room.admitted.update(str(i) for i in newest["admitted"])


def restore_seat(room: LiveRoom, ticket: dict[str, Any],
                 connection_factory: Callable[[str], Connection]) -> Peer:
    """The seat, back in ``room`` as reconnecting, its tracks listed and waiting (detached)
    for its client's first offer to adopt them. ValueError/KeyError/TypeError if the
    ticket is malformed."""
    if ticket.get("v") != VERSION:
        raise ValueError(f"seat ticket version {ticket.get('v')!r}")
    c = ticket["claims"]
    claims = Claims(identity=str(c["identity"]), room=str(c["room"]), role=Role(c["role"]),
                    grants=Grants.from_dict(c["grants"]), name=str(c["name"]),
                    expires_at=float(c["expires_at"]), token_id=str(c["token_id"]),
                    credential=str(c["credential"]), incarnation=str(c["incarnation"]),
                    auth_time=float(c["auth_time"]))
    if claims.room != room.name:
        raise ValueError("seat ticket of another room")
    peer = Peer(claims, room, _nowhere, connection_factory, int(ticket["screen"]), peer_id=str(ticket["peer_id"]))
    peer.resume_secret, peer.resume_secret_hash = "", str(ticket["secret_hash"])
    peer.reconnecting = True
    for track in ticket["tracks"]:
        codec = Codec(str(track["codec"]["mime_type"]), int(track["codec"]["clock_rate"]),
                      track["codec"]["channels"], dict(track["codec"]["parameters"]))
        producer = Producer.awaiting(str(track["id"]), codec, track["rids"], {
            "peer_id": peer.id, "source": str(track["source"]), "label": str(track["label"])})
        peer.held[producer.id] = producer
        if track["muted"]:
            room.muted.add(producer.id)
            producer.paused = producer.kind == "audio"
    room.restore(peer)
    return peer


def _nowhere(message: dict) -> None:
    """A rebuilt seat's notices: its client gets the state on `joined` when it resumes."""
