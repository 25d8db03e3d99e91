"""How long a peer whose connection went keeps its seat, waiting for a resume
(docs/resume.md). When the grace period ends without one, its owner makes it a leave."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .peer import Peer

log = logging.getLogger("telemed.resume")


class ReconnectGrace:
    def __init__(self, seconds: float, expired: Callable[[Peer], Awaitable[None]]) -> None:
        self.seconds = seconds
        self._expired = expired
        self._timers: dict[Peer, asyncio.TimerHandle] = {}

    def start(self, peer: Peer) -> None:
        self.cancel(peer)
        self._timers[peer] = asyncio.get_running_loop().call_later(self.seconds, self._end, peer)

    def cancel(self, peer: Peer) -> bool:
        """Stop waiting for ``peer`` (it resumed or left); True if it was waited for."""
        timer = self._timers.pop(peer, None)
        if timer is not None:
            timer.cancel()
        return timer is not None

    def _end(self, peer: Peer) -> None:
        self._timers.pop(peer, None)
        task = asyncio.ensure_future(self._expired(peer))
        task.add_done_callback(_log_failure)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("ending a reconnect grace period failed", exc_info=task.exception())
