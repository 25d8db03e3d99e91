"""The sequence manager (C, through sfu/seq_manager.py) and the timestamp mapper."""

from __future__ import annotations

import random

from sfu.seq_manager import SeqManager
from sfu.timestamp_mapper import SenderReport, TimelineEnd, continue_offset


def started(first_output: int, first_input: int) -> SeqManager:
    seq = SeqManager()
    seq.reset(first_output)
    seq.sync(first_input)
    return seq


def test_in_order_packets_keep_their_spacing_across_the_wrap():
    seq = started(0xFFFE, 10)
    assert [seq.input(n) for n in range(10, 14)] == [0xFFFE, 0xFFFF, 0, 1]
    assert seq.original(0) == 12 and seq.original(0xFFFE) == 10


def test_dropped_packets_close_up_and_reordering_still_maps():
    seq = started(1000, 65530)
    assert seq.input(65530) == 1000
    seq.drop(65531)                      # padding probe
    assert seq.input(65533) == 1002      # 65532 is late, not dropped: its slot stays
    assert seq.input(65532) == 1001
    seq.drop(65534)
    seq.drop(65535)
    seq.drop(0)
    assert seq.input(1) == 1003
    assert seq.input(2) == 1004
    assert [seq.original(n) for n in range(1000, 1005)] == [65530, 65532, 65533, 1, 2]
    assert seq.original(1005) is None    # not sent yet


def test_a_late_drop_is_a_hole_that_a_nack_cannot_fill():
    seq = started(0, 0)
    assert seq.input(0) == 0 and seq.input(2) == 2
    seq.drop(1)
    assert seq.input(3) == 3
    assert seq.original(1) == 1          # asks the buffer, which never held it


def test_sync_continues_after_the_last_output_and_refuses_older_input():
    seq = started(5, 100)
    for n in range(100, 110):
        seq.input(n)
    seq.sync(40000)                      # another source
    assert seq.input(40000) == 15
    assert seq.input(39999) is None      # before the switch: not ours to number
    assert seq.original(14) is None      # the previous source's number
    assert seq.original(15) == 40000


def test_many_drops_fold_beyond_the_window_without_changing_recent_outputs():
    seq = started(0, 0)
    out = []
    n = 0
    rng = random.Random(7)
    for _ in range(3000):
        if rng.random() < 0.3:
            seq.drop(n & 0xFFFF)
        else:
            out.append((n & 0xFFFF, seq.input(n & 0xFFFF)))
        n += 1
    outputs = [o for _, o in out]
    assert outputs == [i & 0xFFFF for i in range(len(outputs))]  # no hole, ever
    answers = [(seq.original(output), input_seq) for input_seq, output in out]
    assert all(got in (None, want) for got, want in answers)  # never the wrong packet
    assert all(got == want for got, want in answers[-250:])    # the last 128 drops are known
    assert seq.input(out[-250][0] - 300) is None  # too late to number without a clash


def test_timestamp_continues_through_sender_reports_of_one_clock():
    clock = object()
    ntp = 3_900_000_000 << 32
    # old source: RTP 1000 at ntp; its output offset is 50
    old, new = object(), object()
    end = TimelineEnd(timestamp=1000 + 50 + 9000, at=10.0, clock_rate=90000, source=old,
                      clock=clock, report=SenderReport(ntp, 1000), offset=50)
    # new source: RTP 777 at the same ntp; its packet 0.2 s later in its own clock
    offset = continue_offset(end, 777 + 18000, new, clock, SenderReport(ntp, 777), now=99.0)
    assert (777 + 18000 + offset) & 0xFFFFFFFF == 1000 + 18000 + 50
    # the same source again (resumed): its own timestamps say how long it was away
    assert continue_offset(end, 1000 + 90000, old, clock, SenderReport(ntp, 1000), now=99.0) == 50


def test_timestamp_falls_back_to_wall_clock_and_always_moves_forward():
    end = TimelineEnd(timestamp=0xFFFFFF00, at=10.0, clock_rate=48000, source=object(),
                      clock=object(), report=SenderReport(1 << 32, 0), offset=0)
    # another sender's clock: its report says nothing about ours
    offset = continue_offset(end, 5, object(), object(), SenderReport(1 << 32, 0), now=10.5)
    assert (5 + offset) & 0xFFFFFFFF == (0xFFFFFF00 + 24000) & 0xFFFFFFFF
    same_instant = continue_offset(end, 5, object(), None, None, now=10.0)
    assert (5 + same_instant) & 0xFFFFFFFF == (0xFFFFFF00 + 48) & 0xFFFFFFFF
