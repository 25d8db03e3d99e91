"""A client network namespace behind a firewall, for the TURN tests.

An nftables table in the client namespace drops UDP (and, if asked, TCP) from it,
except what `block` lets through, so the client reaches the SFU's media only through
TURN (the server under test and coturn stay in the test's own namespace).
"""

from __future__ import annotations

from tests.client_namespace import ClientNamespace, run

_TABLE = "telemed_test"


class FirewalledClientNet(ClientNamespace):
    def __init__(self) -> None:
        super().__init__("turn")

    def __enter__(self) -> "FirewalledClientNet":
        super().__enter__()
        try:
            self.block()
        except BaseException:
            self.close()
            raise
        return self

    def block(self, udp_ports: tuple[int, ...] = (), tcp_ports: tuple[int, ...] | None = None) -> None:
        """Drop every UDP datagram the client namespace sends out, except to `udp_ports`;
        with `tcp_ports`, also every TCP segment except to those (HTTP and TURN, so that
        neither the SFU's media port over UDP nor its ICE-TCP is reachable directly)."""
        allow_udp = f"udp dport {{ {', '.join(map(str, udp_ports))} }} accept" if udp_ports else ""
        tcp = ""
        if tcp_ports is not None:
            tcp = f"tcp dport {{ {', '.join(map(str, tcp_ports))} }} accept\n            meta l4proto tcp drop"
        rules = f"""
        table inet {_TABLE} {{
          chain out {{
            type filter hook output priority 0; policy accept;
            oif lo accept
            {allow_udp}
            meta l4proto udp counter drop
            {tcp}
          }}
        }}"""
        self.nft(f"table inet {_TABLE} {{}}\ndelete table inet {_TABLE}\n{rules}")

    def dropped_udp(self) -> int:
        """UDP datagrams the firewall dropped so far."""
        listing = run(*self.command(["nft", "list", "chain", "inet", _TABLE, "out"]))
        line = next(line for line in listing.splitlines() if "udp counter" in line and "drop" in line)
        words = line.split()
        return int(words[words.index("packets") + 1])
