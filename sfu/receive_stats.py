"""RFC 3550 receiver statistics for one incoming stream, for our RRs and metrics."""

from __future__ import annotations

from .nack_generator import seq_delta


class ReceiveStats:
    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.received = 0
        self.retransmitted = 0  # of `received`, those that came back after a NACK
        self.bytes = 0
        self._base: int | None = None
        self._cycles = 0
        self._max_seq = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter = 0.0
        self._last_transit: float | None = None

    def add(self, seq: int, timestamp: int, arrival_s: float, size: int) -> None:
        self.received += 1
        self.bytes += size
        if self._base is None:
            self._base = self._max_seq = seq
        elif seq == (self._max_seq + 1) & 0xFFFF:  # in order: the common case, no call
            if seq == 0:
                self._cycles += 1 << 16
            self._max_seq = seq
        else:
            delta = seq_delta(seq, self._max_seq)
            if delta > 0:
                if seq < self._max_seq:
                    self._cycles += 1 << 16
                self._max_seq = seq
        transit = arrival_s * self.clock_rate - timestamp
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            if d < self.clock_rate * 10:  # ignore timestamp jumps (stream restarts)
                self._jitter += (d - self._jitter) / 16
        self._last_transit = transit

    @property
    def extended_max(self) -> int:
        return self._cycles | self._max_seq

    @property
    def expected(self) -> int:
        return 0 if self._base is None else self.extended_max - self._base + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    @property
    def jitter(self) -> int:
        return int(self._jitter)

    def fraction_lost(self) -> int:
        """Loss since the previous call, as RFC 3550's 8-bit fraction."""
        expected, received = self.expected, self.received
        exp_i = expected - self._expected_prior
        rec_i = received - self._received_prior
        self._expected_prior, self._received_prior = expected, received
        lost_i = exp_i - rec_i
        return 0 if exp_i <= 0 or lost_i <= 0 else min(255, (lost_i << 8) // exp_i)
