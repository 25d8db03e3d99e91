"""Prometheus text exposition of the media plane's counters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rooms import scrypt_runs

if TYPE_CHECKING:
    from sfu import Connection

    from .server import Server

_COUNTERS = ("packets_forwarded", "bytes_forwarded", "nacks_received", "retransmissions",
             "nacks_sent", "plis_received", "plis_sent", "packets_lost", "bad_packets",
             "send_failures", "rtp_oversize")


class Metrics:
    def __init__(self, server: Server) -> None:
        self._server = server
        self.joins = 0
        self.login_failures = 0   # wrong passwords, checked
        self.login_throttled = 0  # password logins refused without a check
        self._closed = dict.fromkeys(_COUNTERS, 0)  # totals of connections already gone

    @staticmethod
    def _count(connection: Connection) -> dict[str, int]:
        c = dict.fromkeys(_COUNTERS, 0)
        c["bad_packets"] = connection.bad_packets
        for consumer in connection.consumers.values():
            c["packets_forwarded"] += consumer.packets_sent
            c["bytes_forwarded"] += consumer.octets_sent
            c["nacks_received"] += consumer.nacks_received
            c["retransmissions"] += consumer.retransmitted
            c["plis_received"] += consumer.plis_received
            c["send_failures"] += consumer.target.c.failures
        for producer in connection.producers.values():
            c["nacks_sent"] += producer.nacks_sent
            c["plis_sent"] += producer.keyframes.requests_sent
            c["packets_lost"] += producer.stats.lost
            c["rtp_oversize"] += producer.oversize
        return c

    def absorb(self, connection: Connection) -> None:
        for key, value in self._count(connection).items():
            self._closed[key] += value

    def bytes_forwarded(self) -> int:
        """Every byte sent to subscribers since start (the node's load reports its rate)."""
        total = self._closed["bytes_forwarded"]
        for room in self._server.live.rooms.values():
            for peer in room.peers.values():
                if peer.connection is not None:
                    total += sum(c.octets_sent for c in peer.connection.consumers.values())
        return total

    def render(self) -> str:
        live = self._server.live.rooms.values()
        totals = dict(self._closed)
        peers = producers = consumers = 0
        for room in live:
            peers += len(room.peers)
            producers += len(room.router.producers)
            for peer in room.peers.values():
                if peer.connection is not None:
                    consumers += len(peer.connection.consumers)
                    for key, value in self._count(peer.connection).items():
                        totals[key] += value
        lines = [
            "# TYPE telemed_rooms gauge", f"telemed_rooms {len(self._server.live.rooms)}",
            "# TYPE telemed_peers gauge", f"telemed_peers {peers}",
            "# TYPE telemed_producers gauge", f"telemed_producers {producers}",
            "# TYPE telemed_consumers gauge", f"telemed_consumers {consumers}",
            "# TYPE telemed_joins_total counter", f"telemed_joins_total {self.joins}",
            "# TYPE telemed_login_failures_total counter",
            f"telemed_login_failures_total {self.login_failures}",
            "# TYPE telemed_login_throttled_total counter",
            f"telemed_login_throttled_total {self.login_throttled}",
            "# TYPE telemed_scrypt_runs_total counter", f"telemed_scrypt_runs_total {scrypt_runs()}",
            "# TYPE telemed_password_checks_waiting gauge",
            f"telemed_password_checks_waiting {self._server.passwords.waiting}",
        ]
        for key in _COUNTERS:
            lines += [f"# TYPE telemed_{key}_total counter", f"telemed_{key}_total {totals[key]}"]
        return "\n".join(lines) + "\n"
