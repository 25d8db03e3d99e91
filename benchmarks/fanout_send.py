"""The C fan-out step alone: one packet to N subscribers, batched or not.

`python -m benchmarks.fanout_send [--subscribers 30] [--rounds 8]` (no root, loopback only).

Both variants run the same build of sfu/fanout.c. "batched" gives every target the same
socket, as the shared media port does, so one sendmmsg carries the packet to all N.
"per packet" gives each target its own descriptor (a dup of the same socket), so the
step makes one system call per subscriber, as it did with a socket per connection.
The figure is CPU time (user + system, this process, which includes the loopback
receive path the kernel runs on send) per delivered packet. Writes
results/fanout_send.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from pathlib import Path

from pylibsrtp import Policy, Session

from sfu.fanout import Fanout, Target, Wire
from sfu.rtp_packet import parse_rtp

RESULTS = Path(__file__).resolve().parent / "results"
PACKETS_PER_ROUND = 4000
PAYLOAD = 1100  # a typical 720p VP8 packet


class Member:
    def __init__(self, target: Target) -> None:
        self.target = target


def run(subscribers: int, rounds: int) -> dict:
    receivers = []
    for _ in range(subscribers):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        receivers.append(receiver)
    shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    shared.bind(("127.0.0.1", 0))
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    own = [os.dup(shared.fileno()) for _ in receivers]
    packet = parse_rtp(b"\x80\x60\x00\x01" + bytes(8) + bytes(PAYLOAD))
    figures: dict[str, list[float]] = {"per_packet": [], "batched": []}
    seq = 0
    try:
        for _ in range(rounds):
            for variant in figures:
                fanout = Fanout()
                members = []
                for i, receiver in enumerate(receivers):
                    session = Session(policy=Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND))
                    wire = Wire()
                    fd = shared.fileno() if variant == "batched" else own[i]
                    wire.connect(session, fd, "127.0.0.1", receiver.getsockname()[1])
                    member = Member(Target(wire, 1000 + i, 96, 0))
                    member.session = session  # the wire holds only a raw pointer
                    members.append(member)
                    fanout.add(member)
                sent = 0
                start = time.process_time()
                for n in range(PACKETS_PER_ROUND):
                    seq += 1
                    packet.seq = seq & 0xFFFF  # libsrtp refuses to protect an index twice
                    sent += fanout.send(packet)
                    if n % 16 == 0:
                        _drain(receivers)
                figures[variant].append((time.process_time() - start) / max(sent, 1) * 1e6)
    finally:
        for fd in own:
            os.close(fd)
        shared.close()
        for receiver in receivers:
            receiver.close()
    medians = {k: round(statistics.median(v), 2) for k, v in figures.items()}
    return {"subscribers": subscribers, "rounds": rounds, "packets_per_round": PACKETS_PER_ROUND,
            "payload": PAYLOAD, "cpu_us_per_packet_median": medians,
            "batched_over_per_packet": round(medians["batched"] / medians["per_packet"], 3),
            "runs": {k: [round(x, 2) for x in v] for k, v in figures.items()},
            "load_average": os.getloadavg()[0]}


def _drain(receivers: list[socket.socket]) -> None:
    for receiver in receivers:
        try:
            while receiver.recv(2048):
                pass
        except BlockingIOError:
            pass


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fanout_send", description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=30)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--out", type=Path, default=RESULTS / "fanout_send.json")
    opts = p.parse_args()
    result = run(opts.subscribers, opts.rounds)
    print(f"N={result['subscribers']}: CPU µs per delivered packet, median of {result['rounds']} rounds: "
          f"one call per packet {result['cpu_us_per_packet_median']['per_packet']}, "
          f"sendmmsg {result['cpu_us_per_packet_median']['batched']} "
          f"(×{result['batched_over_per_packet']})")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
