"""Where a consumer's output timestamps continue when its source changes.

Within one source a consumer's timestamp is the input plus a fixed offset (the C
fan-out step adds it). When the source changes (a new producer on a reused m-line,
another simulcast layer, a stream resumed after a pause), the first packet of the new
source must land where the old timeline would be at that moment, so the receiver's
jitter buffer and lip sync see one stream:

* if it is the same source again (a stream resumed after a pause), its own
  timestamps already count the time between: the offset stays;
* if both sources share a sender clock and both have sent a sender report, the new
  packet's RTP time goes through its NTP time into the old source's RTP time (the
  mapping mediasoup's simulcast consumer uses);
* otherwise the output advances by the wall-clock time since the last packet out.
"""

from __future__ import annotations

from dataclasses import dataclass

# The least a switch moves the timeline: the receiver must see time go forward.
MIN_STEP_SECONDS = 0.001


@dataclass(frozen=True)
class SenderReport:
    """A source's clock mapping: NTP time (64-bit fixed point) at an RTP timestamp."""
    ntp: int
    rtp_timestamp: int

    def ntp_seconds(self) -> float:
        return self.ntp / (1 << 32)


@dataclass(frozen=True)
class TimelineEnd:
    """Where an output timeline stood when its source went away."""
    timestamp: int          # output timestamp of the last packet sent
    at: float               # when that was (monotonic seconds)
    clock_rate: int
    source: object          # the stream it came from
    clock: object | None    # what identifies the sender's clock (same object: same clock)
    report: SenderReport | None  # the old source's last sender report
    offset: int             # the old source's input-to-output offset


def continue_offset(end: TimelineEnd, timestamp: int, source: object, clock: object | None,
                    report: SenderReport | None, now: float) -> int:
    """The offset that makes input `timestamp` of the new source continue `end`'s timeline."""
    rate = end.clock_rate
    least = (end.timestamp + max(1, int(MIN_STEP_SECONDS * rate))) & 0xFFFFFFFF
    if source is end.source and _signed32(timestamp + end.offset - least) >= 0:
        return end.offset
    if (clock is not None and clock is end.clock and report is not None
            and end.report is not None):
        seconds = _signed32(timestamp - report.rtp_timestamp) / rate + report.ntp_seconds()
        old_input = end.report.rtp_timestamp + round((seconds - end.report.ntp_seconds()) * rate)
        output = (old_input + end.offset) & 0xFFFFFFFF
    else:
        output = (end.timestamp + round(max(0.0, now - end.at) * rate)) & 0xFFFFFFFF
    if _signed32(output - least) < 0:
        output = least
    return (output - timestamp) & 0xFFFFFFFF


def _signed32(value: int) -> int:
    return ((value + 0x80000000) & 0xFFFFFFFF) - 0x80000000
