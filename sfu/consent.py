"""Consent freshness (RFC 7675) for every connection on the shared media port, from
the one upkeep timer (sfu/upkeep.py) instead of a sleeping task per connection.

Each connection gets a binding request on its selected pair every interval (randomised
by ±20 %, as the RFC asks). Answers are claimed on the port by transaction id. Consent
expires when nothing valid was answered for `expiry` seconds (30 s by default).

A peer that has never answered a consent check (FFmpeg's WHIP muxer, say) keeps its
consent while authenticated SRTP from it keeps arriving: only the holder of this DTLS
session's keys can produce it. Once a peer has answered, it is held to the RFC.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

from .upkeep import Upkeep

log = logging.getLogger("telemed.sfu.consent")


class ConsentSubject(Protocol):
    """One connection, as consent checking sees it (implemented in sfu/aiortc_hook.py)."""

    media_received: int  # authenticated SRTP/SRTCP packets so far
    selected: bool       # ICE has selected a pair

    def consent_request(self) -> tuple[bytes, bytes, Callable[[], None]] | None:
        """(transaction id, signed request, send it) for the selected pair; None while
        ICE has not selected one."""

    def consent_answer_valid(self, data: bytes, addr: tuple) -> bool:
        """An answer from the selected pair's remote, signed with the remote password."""

    def consent_expired(self) -> None: ...


class _Watch:
    __slots__ = ("subject", "fresh_at", "due", "answered", "media_seen", "transaction")

    def __init__(self, subject: ConsentSubject) -> None:
        self.subject = subject
        self.fresh_at: float | None = None   # None until ICE selects a pair
        self.due = 0.0
        self.answered = False
        self.media_seen = 0
        self.transaction: bytes | None = None


INTERVAL = 5.0   # RFC 7675 section 5.1
EXPIRY = 30.0


class ConsentFreshness:
    """`responses` is the media port's table of STUN transaction ids it answers to us."""

    def __init__(self, responses: dict[bytes, Callable[[bytes, tuple], None]]) -> None:
        self._responses = responses
        self.timing: Callable[[], tuple[float, float]] = lambda: (INTERVAL, EXPIRY)
        self._watches: dict[int, _Watch] = {}
        self._upkeep: Upkeep | None = None
        self.checks_sent = 0
        self.expired = 0

    def watch(self, subject: ConsentSubject) -> None:
        if not self._watches:
            self._upkeep = Upkeep.current()
            self._upkeep.add(self)
        self._watches[id(subject)] = _Watch(subject)

    def unwatch(self, subject: ConsentSubject) -> None:
        watch = self._watches.pop(id(subject), None)
        if watch is not None and watch.transaction is not None:
            self._responses.pop(watch.transaction, None)
        if not self._watches and self._upkeep is not None:
            self._upkeep.discard(self)
            self._upkeep = None

    def __len__(self) -> int:
        return len(self._watches)

    def tick(self, now: float) -> None:
        interval, expiry = self.timing()
        for watch in list(self._watches.values()):
            try:
                self._check(watch, now, interval, expiry)
            except Exception:  # one broken connection must not stop everyone's checks
                log.exception("consent check failed")

    def _check(self, watch: _Watch, now: float, interval: float, expiry: float) -> None:
        subject = watch.subject
        if watch.fresh_at is None:
            if not subject.selected:
                return  # ICE still checking: its own checks cover this time
            watch.fresh_at = now
            watch.due = now + interval * (0.8 + 0.4 * random.random())
            watch.media_seen = subject.media_received
            return
        if not watch.answered and subject.media_received != watch.media_seen:
            watch.fresh_at = now
            watch.media_seen = subject.media_received
        if now - watch.fresh_at >= expiry:
            log.info("consent to send expired")
            self.unwatch(subject)
            self.expired += 1
            subject.consent_expired()
            return
        if now < watch.due:
            return
        watch.due = now + interval * (0.8 + 0.4 * random.random())
        request = subject.consent_request()
        if request is None:
            return
        transaction, _, send = request
        if watch.transaction is not None:
            self._responses.pop(watch.transaction, None)
        watch.transaction = transaction
        self._responses[transaction] = lambda data, addr: self._answered(watch, data, addr)
        send()
        self.checks_sent += 1

    def _answered(self, watch: _Watch, data: bytes, addr: tuple) -> None:
        if not watch.subject.consent_answer_valid(data, addr):
            return
        if watch.transaction is not None:
            self._responses.pop(watch.transaction, None)
        watch.transaction = None
        watch.answered = True
        watch.fresh_at = time.monotonic()
