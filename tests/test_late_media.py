"""sfu/late_media.py on synthetic streams: what is judged stale, and what never is."""

from __future__ import annotations

import logging
import random

from sfu.late_media import FRESH_WITHIN, EpisodeLog, LateMedia

AUDIO = (48000, 0.02, 1)      # clock rate, seconds between frames, packets per frame
VIDEO = (90000, 1 / 30, 4)


def stream(kind: tuple, seconds: float, start_ts: int = 1234, ppm: float = 0.0) -> list[tuple[float, int]]:
    """(send time, RTP timestamp) of every packet; `ppm`: how fast the sender's clock runs."""
    rate, interval, per_frame = kind
    out = []
    for frame in range(int(seconds / interval)):
        sent = frame * interval
        ts = (start_ts + round(sent * rate * (1 + ppm * 1e-6))) & 0xFFFFFFFF
        out += [(sent + i * 0.0005, ts) for i in range(per_frame)]
    return out


def judge(kind: tuple, packets: list[tuple[float, int]], arrival) -> tuple[LateMedia, list[bool]]:
    """Feed each packet arriving at arrival(send time); the verdict for each."""
    late = LateMedia(kind[0])
    return late, [late.stale(ts, 5.0 + arrival(sent)) for sent, ts in packets]


def stalled(start: float, length: float, drain: float = 20e-6):
    """The server reads nothing from `start` for `length`, then the backlog at `drain` s a packet."""
    queued = []

    def arrival(sent: float) -> float:
        if start <= sent < start + length:
            queued.append(sent)
            return start + length + drain * len(queued)
        return sent + 0.01
    return arrival


def test_steady_stream_is_never_late():
    for kind in (AUDIO, VIDEO):
        _, verdicts = judge(kind, stream(kind, 120), lambda sent: sent + 0.04)
        assert not any(verdicts)


def test_jitter_is_not_late():
    rng = random.Random(7)
    for kind in (AUDIO, VIDEO):
        # a jittery path: up to 300 ms, and a 700 ms spike now and then (a handover)
        _, verdicts = judge(kind, stream(kind, 120),
                            lambda sent: sent + rng.uniform(0, 0.3) + (0.7 if rng.random() < 0.002 else 0))
        assert not any(verdicts)


def test_stall_then_burst_is_shed_until_fresh():
    for kind in (AUDIO, VIDEO):
        packets = stream(kind, 20)
        late, verdicts = judge(kind, packets, stalled(10.0, 3.0))
        backlog = [v for (sent, _), v in zip(packets, verdicts) if 10.0 <= sent < 13.0]
        before = [v for (sent, _), v in zip(packets, verdicts) if sent < 10.0]
        after = [v for (sent, _), v in zip(packets, verdicts) if sent >= 13.0]
        assert not any(before) and not any(after)
        # Shed: all the backlog but its first packets (forwarded while the burst shows that
        # it is a backlog, not a resumed sender: under 0.1 s of media) and its last
        # FRESH_WITHIN seconds, which are no later than jitter.
        sent_shed = [sent for (sent, _), v in zip(packets, verdicts) if v]
        assert min(sent_shed) < 10.1 and max(sent_shed) > 13.0 - FRESH_WITHIN - 0.05
        assert sum(backlog) >= len(backlog) * (3.0 - FRESH_WITHIN - 0.1) / 3.0
        assert not late.shedding


def test_starved_server_falling_behind_then_catching_up():
    """A CPU-starved server reads at half real time for 6 s (6 s behind at the end), then
    drains the backlog at twenty times real time."""
    def arrival(sent: float) -> float:
        if sent < 10.0:
            return sent
        if sent < 16.0:
            return 10.0 + 2 * (sent - 10.0)
        return max(sent, 22.0 + (sent - 16.0) * 0.05)
    packets = stream(VIDEO, 40)
    late, verdicts = judge(VIDEO, packets, arrival)
    lateness = {sent: arrival(sent) - sent for sent, _ in packets}
    for (sent, _), verdict in zip(packets, verdicts):
        if lateness[sent] > 1.05:
            assert verdict, f"{lateness[sent]:.2f} s late, forwarded"
        if lateness[sent] < FRESH_WITHIN - 0.01:
            assert not verdict
    assert late.worst > 5 and not late.shedding


def test_paused_publisher_is_not_late():
    """A muted camera, a still screen share: nothing for 8 s, then the stream again."""
    def arrival(sent: float) -> float:
        return sent + 0.03
    for kind in (AUDIO, VIDEO):
        rate = kind[0]
        # A browser: its timestamps follow the capture clock, the pause is in them too.
        packets = [p for p in stream(kind, 30) if not 10.0 <= p[0] < 18.0]
        _, verdicts = judge(kind, packets, arrival)
        assert not any(verdicts)
        # A sender whose timestamps count frames, not time: on resume every packet is
        # 8 s behind its timestamp, at real-time pace: a new floor, nothing shed.
        counted = [(sent if sent < 10.0 else sent + 8.0, ts) for sent, ts in stream(kind, 22)]
        late, verdicts = judge(kind, counted, arrival)
        assert not any(verdicts), f"{sum(verdicts)} shed at {rate} Hz"
        assert late.floor > 5.0 + 8.0 - 0.5  # rebased


def test_sender_catching_up_after_a_pause_is_shed():
    """A sender that paused and then sends the frames it owes at once (aiortc's
    synthetic tracks do) is a backlog like a stalled server's."""
    def arrival(sent: float) -> float:
        return sent + 0.02 if not 10.0 <= sent < 14.0 else 14.0 + (sent - 10.0) * 0.01
    packets = stream(VIDEO, 20)
    _, verdicts = judge(VIDEO, packets, arrival)
    shed = [sent for (sent, _), v in zip(packets, verdicts) if v]
    assert shed and min(shed) < 10.1 and max(shed) < 14.0


def test_clock_drift_over_minutes_is_not_late():
    for ppm in (-300, 300):
        for kind in (AUDIO, VIDEO):
            rng = random.Random(ppm)
            _, verdicts = judge(kind, stream(kind, 900, ppm=ppm), lambda sent: sent + rng.uniform(0, 0.1))
            assert not any(verdicts), ppm


def test_timestamp_wrap():
    for kind in (AUDIO, VIDEO):
        start = 0xFFFFFFFF - kind[0] * 5  # wraps 5 s in, while the server stalls
        packets = stream(kind, 20, start_ts=start)
        assert any(ts < packets[0][1] for _, ts in packets)  # it does wrap
        _, verdicts = judge(kind, stream(kind, 20, start_ts=start), lambda sent: sent)
        assert not any(verdicts)
        _, verdicts = judge(kind, packets, stalled(4.0, 3.0))
        shed = [sent for (sent, _), v in zip(packets, verdicts) if v]
        assert shed and 4.0 <= min(shed) < 4.1 and max(shed) < 7.0


def test_sender_clock_restart_is_a_new_timeline():
    """Timestamps that jump back (a sender restarting its clock on the same SSRC)."""
    packets = stream(AUDIO, 10, start_ts=10_000_000) + [
        (10.0 + sent, ts) for sent, ts in stream(AUDIO, 10, start_ts=5)]
    _, verdicts = judge(AUDIO, packets, lambda sent: sent)
    assert not any(verdicts)


def test_lateness_that_holds_is_a_new_floor():
    """A path whose delay grows by 2 s within half a second and stays: shed at first
    (no silence before it, so no pause), then taken as the stream's new normal rather
    than shed for ever."""
    packets = stream(AUDIO, 30)
    _, verdicts = judge(AUDIO, packets, lambda sent: sent + 2.0 * min(1.0, max(0.0, (sent - 10.0) / 0.5)))
    shed = [sent for (sent, _), v in zip(packets, verdicts) if v]
    assert shed and 10.2 < min(shed) < 10.3 and 12.0 < max(shed) < 13.0


def test_retransmissions_are_judged_not_noted():
    late = LateMedia(90000)
    for i in range(300):
        late.stale(i * 3000, i / 30)
    floor = late.floor
    # one round trip and a NACK's wait late: forwarded; seconds late: not
    assert not late.too_late(290 * 3000, 299 / 30 + 0.15)
    assert late.too_late(100 * 3000, 299 / 30 + 0.1)
    assert late.floor == floor and not late.shedding
    # during an episode, the backlog's retransmissions are shed too
    for i in range(300, 320):
        late.stale(i * 3000, i / 30 + (i - 299) * 0.1)
    assert late.shedding and late.too_late(310 * 3000, 320 / 30 + 2.0)


def test_one_log_line_per_episode_at_most_one_a_minute(caplog):
    episodes = EpisodeLog()
    with caplog.at_level(logging.WARNING, logger="telemed.sfu"):
        for n in range(3):  # a stall: every stream late at once
            episodes.episode(f"p{n}", "video", 3.2)
        assert [r.getMessage() for r in caplog.records] == [
            "video of producer p0 arrives 3.2 s late (the server or the publisher's path fell behind): "
            "not sent to viewers until it is fresh again"]
        episodes._quiet_until = 0.0  # the minute is over
        episodes.episode("p0", "audio", 1.5)
        assert len(caplog.records) == 2 and "(2 more episodes since the last such line)" in caplog.records[1].getMessage()
