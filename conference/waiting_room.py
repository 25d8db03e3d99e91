"""Guests who knocked and wait for a host to let them into a live room."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .peer import Peer


class WaitingRoom:
    """Peers that exist (they have an id and a socket) but are not in the room yet:
    no media, no data, no room events until a host admits them."""

    def __init__(self) -> None:
        self._guests: dict[str, Peer] = {}

    def add(self, peer: Peer) -> None:
        self._guests[peer.id] = peer

    def pop(self, peer_id: str) -> Peer | None:
        return self._guests.pop(peer_id, None)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._guests

    def __len__(self) -> int:
        return len(self._guests)

    def guests(self) -> list[Peer]:
        return list(self._guests.values())

    def describe(self) -> list[dict]:
        return [peer.describe() for peer in self._guests.values()]
