"""One timer per event loop for every connection's once-a-second upkeep.

A sleeping task per connection costs more than the work it wakes up for (NACK and
keyframe retries, receiver reports, following the ICE pair), so connections
register here instead; the task exists only while something is registered.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Protocol

log = logging.getLogger("telemed.sfu.upkeep")

INTERVAL = 1.0


class Tickable(Protocol):
    def tick(self, now: float) -> None: ...


class Upkeep:
    _by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Upkeep]" = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self._members: dict[int, Tickable] = {}
        self._task: asyncio.Task | None = None

    @classmethod
    def current(cls) -> "Upkeep":
        loop = asyncio.get_running_loop()
        upkeep = cls._by_loop.get(loop)
        if upkeep is None:
            upkeep = cls._by_loop[loop] = cls()
        return upkeep

    def add(self, member: Tickable) -> None:
        self._members[id(member)] = member
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, member: Tickable) -> None:
        self._members.pop(id(member), None)
        if not self._members and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            now = time.monotonic()
            for member in list(self._members.values()):
                try:
                    member.tick(now)
                except Exception:  # one broken member must not stop everyone's upkeep
                    log.exception("upkeep failed for %r", member)
