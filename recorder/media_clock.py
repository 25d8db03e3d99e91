"""RTP time to the server's monotonic clock.

A track's file keeps its RTP timing (exact, continuous); where the track sits on the
recording's timeline comes from its first frame's server time. Sender reports give each
RTP timestamp the sender's NTP time, and one offset per sender (NTP to our monotonic
clock, the smallest seen: the least delayed report) puts the audio and video of one
person on the same clock. Until a report arrives, the first packet's arrival stands in.

A sender stamps a report when it sends a packet, which is after capture by however long
encoding and queueing took; of a track's first reports we keep the one that puts its RTP
time earliest, the least delayed.
"""

from __future__ import annotations

NTP_FRACTION = 1 << 32
REPORTS_KEPT = 10   # first reports looked at: later ones would bring clock drift in


class SenderClock:
    """One per publishing peer: its NTP clock relative to our monotonic clock."""

    def __init__(self) -> None:
        self.offset: float | None = None   # monotonic - NTP seconds

    def observe(self, ntp: int, arrival: float) -> None:
        offset = arrival - ntp / NTP_FRACTION
        if self.offset is None or offset < self.offset:
            self.offset = offset


class RtpClock:
    def __init__(self, clock_rate: int, sender: SenderClock) -> None:
        self.clock_rate = clock_rate
        self.sender = sender
        self._last: int | None = None       # extended timestamp of the last unwrap
        self.first: int | None = None       # extended timestamp of the first frame
        self.first_arrival = 0.0
        self.last: int | None = None        # extended timestamp of the last frame
        self._report: tuple[int, int] | None = None  # (ntp, extended rtp timestamp)
        self._reports = 0

    def unwrap(self, timestamp: int) -> int:
        if self._last is None:
            self._last = timestamp
            return timestamp
        delta = ((timestamp - self._last + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        ext = self._last + delta
        self._last = max(self._last, ext)
        return ext

    def frame(self, timestamp: int, arrival: float) -> int:
        """Note a written frame; returns its time in ms since the track's first frame."""
        ext = self.unwrap(timestamp)
        if self.first is None:
            self.first, self.first_arrival = ext, arrival
        self.last = ext if self.last is None else max(self.last, ext)
        return (ext - self.first) * 1000 // self.clock_rate

    def sender_report(self, ntp: int, rtp_timestamp: int, arrival: float) -> None:
        self.sender.observe(ntp, arrival)
        if self._reports >= REPORTS_KEPT:
            return
        self._reports += 1
        report = (ntp, self.unwrap(rtp_timestamp))
        if self._report is None or self._lag(report) < self._lag(self._report):
            self._report = report

    def _lag(self, report: tuple[int, int]) -> float:
        return report[0] / NTP_FRACTION - report[1] / self.clock_rate

    def server_time(self, ext: int) -> float:
        if self._report is None or self.sender.offset is None or self.first is None:
            return self.first_arrival + ((ext - self.first) / self.clock_rate if self.first is not None else 0)
        ntp, rtp = self._report
        return ntp / NTP_FRACTION + (ext - rtp) / self.clock_rate + self.sender.offset

    def start(self) -> float | None:
        """Server time of the first frame (None before one)."""
        return None if self.first is None else self.server_time(self.first)

    def end(self) -> float | None:
        return None if self.last is None else self.server_time(self.last)
