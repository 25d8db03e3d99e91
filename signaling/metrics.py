"""Prometheus metrics of one server (docs/metrics.md), through prometheus_client.

Counters only grow: the media plane's totals are those of every connection this
server opened, closed ones included (sfu.Traffic keeps what a renegotiation closed).
Per-room gauges name at most ``room_labels`` rooms, the busiest; the rest are summed
under ``room="(other)"``, so a thousand small rooms cannot blow up a scrape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (CollectorRegistry, Counter, GCCollector, Histogram, PlatformCollector,
                               ProcessCollector, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from rooms import scrypt_runs
from sfu import Connection, Traffic, batch_times

if TYPE_CHECKING:
    from .server import Server

OTHER_ROOMS = "(other)"  # not a valid room name (rooms/room.py), so it never clashes with one

_TRAFFIC_HELP = {
    "packets_forwarded": "RTP packets sent to subscribers",
    "bytes_forwarded": "RTP payload and header bytes sent to subscribers",
    "nacks_received": "NACKed packets subscribers asked for",
    "retransmissions": "packets resent to subscribers after a NACK",
    "plis_received": "keyframe requests (PLI/FIR) from subscribers",
    "send_failures": "packets the fan-out step could not send",
    "nacks_sent": "lost packets NACKed to publishers",
    "plis_sent": "keyframe requests sent to publishers",
    "keyframes_reused": "viewers started on a keyframe that had just gone by, with no request upstream",
    "packets_lost": "packets publishers sent that never arrived (RFC 3550 cumulative loss)",
    "rtp_oversize": "packets too large to forward",
    "late_packets_shed": "media packets not sent to subscribers because they arrived seconds late",
    "late_episodes": "times a received stream began arriving seconds late and was shed until fresh",
    "bad_packets": "undecodable RTP/RTCP packets received",
}


class Metrics:
    def __init__(self, server: Server, room_labels: int = 20) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.joins = Counter("telemed_joins", "Peers that joined a live room (not counting waits in its waiting room)", registry=r)
        self.resumes = Counter("telemed_resumes", "Seats taken over by a new connection (docs/resume.md)",
                               registry=r)
        self.login_failures = Counter("telemed_login_failures", "Wrong room passwords, checked", registry=r)
        self.login_throttled = Counter("telemed_login_throttled",
                                       "Password logins refused without a check (rate limits)", registry=r)
        self.join_seconds = Histogram(
            "telemed_join_seconds", "Time from a verified token to a peer in the room, or in its waiting room",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0), registry=r)
        self.token_check_seconds = Histogram(
            "telemed_token_check_seconds", "Time to verify a token: signature, room incarnation, revocation",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1), registry=r)
        self.clinical_intake_seconds = Histogram(
            "telemed_clinical_intake_seconds",
            "Time from a checked clinical item to its fan-out: audit record, durable log append, fan-out",
            ["kind"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=r)
        self.media = MediaCollector(server, room_labels)
        r.register(self.media)

    def clinical_intake(self, kind: str, seconds: float) -> None:
        self.clinical_intake_seconds.labels(kind).observe(seconds)

    def bytes_forwarded(self) -> int:
        """Every byte sent to subscribers since start (the node's load reports its rate)."""
        return self.media.traffic().bytes_forwarded

    def render(self) -> str:
        """The text exposition format, version 0.0.4."""
        return generate_latest(self.registry).decode()


class MediaCollector:
    """Reads the live rooms and the connections at scrape time (prometheus_client's
    custom collector protocol: ``collect`` yields metric families)."""

    def __init__(self, server: Server, room_labels: int) -> None:
        self._server = server
        self._room_labels = room_labels
        self._open: set[Connection] = set()
        self._closed = Traffic()  # totals of the connections already closed
        self._lost_peak = 0

    def track(self, connection: Connection) -> None:
        self._open.add(connection)

    def release(self, connection: Connection) -> None:
        """A connection that closed: its totals stay, the object goes."""
        if connection in self._open:
            self._open.discard(connection)
            self._closed.add(connection.traffic())

    def traffic(self) -> Traffic:
        """Totals since start, the connections still open and those closed."""
        total = Traffic()
        for connection in list(self._open):
            if connection.closed:
                self.release(connection)
            else:
                total.add(connection.traffic())
        total.add(self._closed)
        # Cumulative loss goes down when a late packet arrives; a counter must not.
        self._lost_peak = total.packets_lost = max(self._lost_peak, total.packets_lost)
        return total

    def collect(self) -> Iterator[Metric]:
        live = self._server.live.rooms
        rooms = []
        for name, room in live.items():
            consumers = sum(len(p.connection.consumers) for p in room.peers.values() if p.connection is not None)
            rooms.append((name, len(room.peers), len(room.router.producers), consumers))
        yield GaugeMetricFamily("telemed_rooms", "Live rooms", value=len(rooms))
        yield GaugeMetricFamily("telemed_peers", "Peers in live rooms", value=sum(r[1] for r in rooms))
        yield GaugeMetricFamily("telemed_producers", "Published tracks", value=sum(r[2] for r in rooms))
        yield GaugeMetricFamily("telemed_consumers", "Forwarded track copies", value=sum(r[3] for r in rooms))
        yield from self._per_room(rooms)
        yield from self._media_port()
        yield GaugeMetricFamily("telemed_password_checks_waiting", "Password checks queued for a worker",
                                value=self._server.passwords.waiting)
        yield CounterMetricFamily("telemed_recording_archive_failures",
                                  "Failed attempts to copy a recording to the S3 archive (each is retried)",
                                  value=self._server.recordings.archive_failures)
        yield CounterMetricFamily("telemed_scrypt_runs", "scrypt derivations this process has run",
                                  value=scrypt_runs())
        for name, value in self.traffic().as_dict().items():
            yield CounterMetricFamily(f"telemed_{name}", _TRAFFIC_HELP[name].capitalize(), value=value)
        yield HistogramMetricFamily(
            "telemed_forwarding_batch_seconds",
            "Time of one fan-out step: one incoming packet rewritten, protected and sent to every subscriber",
            buckets=[("+Inf" if b == float("inf") else repr(b), n) for b, n in batch_times.cumulative()],
            sum_value=batch_times.total_seconds())

    def _per_room(self, rooms: list[tuple[str, int, int, int]]) -> Iterator[Metric]:
        rooms.sort(key=lambda r: (-r[1], r[0]))
        named, rest = rooms[:self._room_labels], rooms[self._room_labels:]
        if rest:
            named.append((OTHER_ROOMS, *(sum(r[i] for r in rest) for i in (1, 2, 3))))
        families = [GaugeMetricFamily(f"telemed_room_{what}", f"{what.capitalize()} per room "
                                      f"(the {self._room_labels} busiest; the rest as room=\"{OTHER_ROOMS}\")",
                                      labels=["room"]) for what in ("peers", "producers", "consumers")]
        for name, *values in named:
            for family, value in zip(families, values):
                family.add_metric([name], value)
        yield from families

    def _media_port(self) -> Iterator[Metric]:
        """The shared media port (docs/firewall.md): what its demultiplexer dropped and why,
        the entries it holds, and the peers whose consent expired; and the connections a
        full media port range refused (0 without a range)."""
        ports = self._server.port_range
        yield CounterMetricFamily("telemed_media_port_range_refused",
                                  "Connections refused because every port of the media port range was taken",
                                  value=ports.exhausted if ports is not None else 0)
        port = self._server.media_port
        if port is None:
            return
        dropped = CounterMetricFamily("telemed_media_port_dropped", "Datagrams the media port dropped, by reason",
                                      labels=["reason"])
        for reason, count in vars(port.counters).items():
            dropped.add_metric([reason], count)
        dropped.add_metric(["receive_buffer_full"], port.receive_buffer_drops())
        dropped.add_metric(["oversize"], port.oversize_drops())
        yield dropped
        yield GaugeMetricFamily("telemed_media_port_entries",
                                "Demultiplexing entries (ufrags, addresses, checks, ICE-TCP links) held",
                                value=port.entries())
        yield CounterMetricFamily("telemed_consent_expired", "Peers disconnected because consent expired (RFC 7675)",
                                  value=port.consent.expired)
