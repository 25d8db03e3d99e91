"""scrypt off the event loop, on a small fixed pool of threads that guesses cannot take over.

Each check needs ~0.1 s of a core and 32 MiB, so the pool is about as small as the machine:
on 2 cores, one thread for everyone and one kept back measured best (benchmarks/login.py),
since every extra concurrent check slows the one a person is waiting for.
Checks wait for a thread by priority, then in arrival order. Priority 0 (someone who logged
into the room lately, as the login limiter tells) also has a thread of its own that other
checks may not take, so people already in a consult never queue behind guesses; and the
limiter ranks addresses that failed lately below fresh ones. The queue is bounded: beyond it
a check is refused at once rather than left to wait.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from rooms.passwords import hash_password, verify_password

T = TypeVar("T")


class HasherBusy(Exception):
    """Too many checks are waiting; the caller should try again shortly."""


class PasswordHasher:
    def __init__(self, workers: int = 2, max_waiting: int = 256) -> None:
        if workers < 1 or max_waiting < 0:
            raise ValueError("workers must be positive and max_waiting not negative")
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="scrypt")
        self._free = workers
        self._reserved = 1 if workers > 1 else 0  # for priority 0 only
        self._max_waiting = max_waiting
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(not turn.done() for _, _, turn in self._waiting)

    async def hash(self, password: str) -> str:
        return await self.run(hash_password, password)

    async def verify(self, password: object, stored: str | None, priority: int = 0) -> bool:
        """``stored`` None: the room does not exist, and the check costs the same anyway."""
        return await self.run(verify_password, password, stored, priority=priority)

    async def run(self, fn: Callable[..., T], *args: object, priority: int = 0) -> T:
        """Any other scrypt work (e.g. a room's role passwords), on the same pool."""
        await self._acquire(priority)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._release()

    def _may_start(self, priority: int) -> bool:
        return self._free > (0 if priority == 0 else self._reserved)

    def _first_waiting(self) -> int | None:
        """Priority of the first live waiter, dropping those that gave up."""
        while self._waiting and self._waiting[0][2].done():
            heapq.heappop(self._waiting)
        return self._waiting[0][0] if self._waiting else None

    async def _acquire(self, priority: int) -> None:
        first = self._first_waiting()
        if self._may_start(priority) and (first is None or first > priority):
            self._free -= 1
            return
        if self.waiting >= self._max_waiting:
            raise HasherBusy("too many password checks are waiting")
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the thread was handed to us just as we were cancelled
            raise

    def _release(self) -> None:
        self._free += 1
        while (first := self._first_waiting()) is not None and self._may_start(first):
            _, _, turn = heapq.heappop(self._waiting)
            self._free -= 1
            turn.set_result(None)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
