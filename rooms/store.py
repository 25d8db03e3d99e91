"""Where rooms live: the interface every store offers, and the in-process default."""

from __future__ import annotations

import builtins
import dataclasses
from typing import Protocol

from rooms.layout import Layout
from rooms.room import Room


class RoomExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"room {name!r} already exists")
        self.name = name


class RoomNotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"room {name!r} not found")
        self.name = name


class RoomStoreUnavailable(Exception):
    """The store could not take a write (disk full, read-only, damaged); nothing changed."""


class RoomStore(Protocol):
    async def create(self, room: Room) -> None:
        """Add ``room``; raise RoomExists if the name is taken. Atomic across nodes."""

    async def get(self, name: str) -> Room | None: ...

    async def delete(self, name: str) -> bool:
        """Remove the room; False if there was none."""

    async def list(self) -> builtins.list[Room]:
        """All rooms, sorted by name."""

    async def set_layout(self, name: str, layout: Layout) -> Layout:
        """Replace the room's layout and return it with the next version number.

        The caller's ``layout.version`` is ignored: the store alone numbers versions, so
        every node and the recorder agree on their order. Raise RoomNotFound if needed.
        """

    async def close(self) -> None: ...


class MemoryRoomStore:
    """Single-process store. No awaits between check and write, so no lock is needed."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}

    async def create(self, room: Room) -> None:
        if room.name in self._rooms:
            raise RoomExists(room.name)
        self._rooms[room.name] = room

    async def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    async def delete(self, name: str) -> bool:
        return self._rooms.pop(name, None) is not None

    async def list(self) -> builtins.list[Room]:
        return [self._rooms[name] for name in sorted(self._rooms)]

    async def set_layout(self, name: str, layout: Layout) -> Layout:
        room = self._rooms.get(name)
        if room is None:
            raise RoomNotFound(name)
        new = dataclasses.replace(layout, version=room.layout.version + 1)
        self._rooms[name] = dataclasses.replace(room, layout=new)
        return new

    async def close(self) -> None:
        pass
