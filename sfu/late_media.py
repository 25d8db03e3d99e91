"""Late media: packets that arrive seconds after their time, shed instead of forwarded.

When the server falls behind (its event loop starved of CPU or blocked), media waits in
the media port's receive buffer; when it catches up it would send seconds of old media
at once, which shows a replay of the past and overflows the subscribers' own buffers.
A live consult must show now, so such media is not sent to viewers (sfu/producer.py).

How late a packet is: its arrival less its RTP time (`transit`), above the smallest
transit of the stream's recent fresh packets (the floor, kept over the last
FLOOR_SPAN to 2 * FLOOR_SPAN seconds), so the sender's clock offset, slow clock
drift and the path's base delay cancel, as in a receiver's delay estimate. The RTP
timestamp is unwrapped step by step, so it may wrap.

Later than STALE_AFTER starts an episode of shedding; it ends at the first packet back
within FRESH_WITHIN, so the tail of a backlog is shed too rather than sent in a burst.

A sender that paused (a muted camera, a still screen share) is not late: a browser's
timestamps follow its capture clock, so the silence is in the timestamps as well. A
sender whose timestamps do not count the pause resumes with every packet "late" by
the pause, though, and so does a stalled server's backlog; the packets after decide.
A backlog drains faster than real time (each packet less late than the one before);
a resumed sender comes at real time, at a steady lateness. So a late packet after a
silence of PAUSE_GAP is forwarded on probation: lateness falling by DRAIN makes it
a backlog (shed; so a stalled server still sends its backlog's first DRAIN or so of
media), PROBATION seconds without that a new floor. Should an episode's lateness
hold steady anyway (within STEADY_WITHIN for STEADY_FOR seconds), it is a new floor
too: a backlog drains, so one that does not is the stream's new normal.

Retransmissions that answer our NACKs are judged (`too_late`) but do not move the
floor: they are late by design (a round trip and the NACK's wait). One more than
STALE_AFTER late, or any during an episode, is not sent to viewers, whose own
receivers gave up on it long ago; it never starts an episode by itself.
"""

from __future__ import annotations

import logging
import math
import time

log = logging.getLogger("telemed.sfu")

STALE_AFTER = 1.0     # s beyond the floor: stale (network jitter stays well under it)
FRESH_WITHIN = 0.25   # s beyond the floor: fresh again, ending an episode
FLOOR_SPAN = 10.0     # s: the floor is the least transit of the last one or two spans
PAUSE_GAP = 0.5       # s without a packet before a late one: perhaps a sender's pause
DRAIN = 0.05          # s less late, on probation: a backlog draining
PROBATION = 0.5       # s of arrivals at a steady lateness after a pause: a new floor
STEADY_WITHIN = 0.2   # s: an episode's lateness holding within this ...
STEADY_FOR = 2.0      # ... for this long is a new floor, not a backlog
RESTART_BACK = 1.0    # s: a timestamp this far behind the last one starts a new timeline
LOG_EVERY = 60.0      # s between log lines about episodes, process-wide

_FRESH, _ON_PROBATION, _SHEDDING = 0, 1, 2  # states


class LateMedia:
    """One stream's lateness judge. `stale` is on the per-packet path: a few operations
    in the common case (`_limit` holds the state: the latest transit still fresh, -inf
    during an episode), the rest only once a packet is late."""

    __slots__ = ("_tick", "_back", "_last", "_media", "_arrival", "floor", "_span", "_span_end",
                 "_limit", "state", "worst", "_since", "_at", "_low")

    def __init__(self, clock_rate: int) -> None:
        self._tick = 1.0 / clock_rate
        self._back = -int(RESTART_BACK * clock_rate)
        self._last = 0          # the last timestamp noted (32 bits)
        self._media = 0         # ... unwrapped, in clock ticks
        self._arrival = -math.inf
        self.floor = math.inf   # the least transit of this span and the one before
        self._span = math.inf   # ... of this span
        self._span_end = -math.inf
        self._limit = math.inf
        self.state = _FRESH
        self.worst = 0.0        # the episode's greatest lateness, s
        self._since = 0.0       # probation or steadiness: from when
        self._at = 0.0          # ... at what lateness
        self._low = 0.0         # ... and the least transit since

    @property
    def shedding(self) -> bool:
        return self.state == _SHEDDING

    def stale(self, timestamp: int, arrival: float) -> bool:
        """Note a media packet (`arrival` in seconds); True if it is stale, not to be sent."""
        step = timestamp - self._last
        self._last = timestamp
        if step < self._back or step > 0x7FFFFFFF:  # wrapped, or the clock went back
            step = ((step + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            if step < self._back:  # the sender's clock went back: nothing to compare with
                self._media += step
                self._arrival = arrival
                return self._new_floor(arrival - self._media * self._tick, arrival)
        media = self._media = self._media + step
        transit = arrival - media * self._tick
        if transit > self._limit:
            return self._judge(transit, arrival)
        self._arrival = arrival
        if transit < self._span:
            self._span = transit
            if transit < self.floor:
                self._set_floor(transit)
        if arrival > self._span_end:  # the span before goes out of the floor
            self._rotate(transit, arrival)
        return False

    def too_late(self, timestamp: int, arrival: float) -> bool:
        """A retransmission, judged without being noted: it is late by design (a round
        trip and the NACK's wait), and during an episode it belongs to the backlog."""
        step = ((timestamp - self._last + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        return self.state == _SHEDDING or arrival - (self._media + step) * self._tick - self.floor > STALE_AFTER

    def _set_floor(self, transit: float) -> None:
        self.floor = transit
        if self.state == _FRESH:
            self._limit = transit + STALE_AFTER

    def _rotate(self, transit: float, arrival: float) -> None:
        self._set_floor(min(self._span, transit))
        self._span = transit
        self._span_end = arrival + FLOOR_SPAN

    def _judge(self, transit: float, arrival: float) -> bool:
        gap = arrival - self._arrival
        self._arrival = arrival
        lateness = transit - self.floor
        if self.state == _FRESH:
            self._watch(transit, lateness, arrival)
            self._limit = -math.inf  # every packet comes here until the episode ends
            if gap >= PAUSE_GAP:
                self.state = _ON_PROBATION
                return False
            self.state = _SHEDDING
            self.worst = lateness
            return True
        self._low = min(self._low, transit)
        if self.state == _ON_PROBATION:
            if lateness >= self._at - DRAIN:
                if arrival - self._since < PROBATION:
                    return False
                return self._new_floor(self._low, arrival)  # a sender resumed, at real time
            self.state = _SHEDDING  # a backlog draining
            self.worst = self._at
        if lateness <= FRESH_WITHIN:
            self.state = _FRESH
            self._limit = self.floor + STALE_AFTER
            if transit < self._span:
                self._span = transit
                if transit < self.floor:
                    self._set_floor(transit)
            return False
        self.worst = max(self.worst, lateness)
        if abs(lateness - self._at) > STEADY_WITHIN:
            self._watch(transit, lateness, arrival)
        elif arrival - self._since >= STEADY_FOR:
            return self._new_floor(self._low, arrival)
        return True

    def _watch(self, transit: float, lateness: float, arrival: float) -> None:
        """Measure steadiness from this packet on."""
        self._since, self._at, self._low = arrival, lateness, transit

    def _new_floor(self, transit: float, arrival: float) -> bool:
        self.state = _FRESH
        self._span = transit
        self._set_floor(transit)
        self._span_end = arrival + FLOOR_SPAN
        return False


class EpisodeLog:
    """A warning per episode, at most one per LOG_EVERY for the process (a stalled server
    makes every stream late at once); the next line counts those left unsaid."""

    def __init__(self) -> None:
        self._quiet_until = -math.inf
        self._unsaid = 0

    def episode(self, producer_id: str, kind: str, lateness: float) -> None:
        now = time.monotonic()
        if now < self._quiet_until:
            self._unsaid += 1
            return
        self._quiet_until = now + LOG_EVERY
        more = f" ({self._unsaid} more episodes since the last such line)" if self._unsaid else ""
        self._unsaid = 0
        log.warning("%s of producer %s arrives %.1f s late (the server or the publisher's path fell "
                    "behind): not sent to viewers until it is fresh again%s", kind, producer_id, lateness, more)


episode_log = EpisodeLog()
