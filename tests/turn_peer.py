"""The ambulance behind a firewall, run by tests/test_turn_relay.py inside its client
namespace: it signs in, takes the TURN credentials the server hands out, and publishes a
camera over WHIP through TURN only (iceTransportPolicy "relay").

Prints one JSON line once connected, with the seconds from the answer to "connected" (or
with "error"), then stays up until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time

import aiohttp
from aiortc import (RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection,
                    RTCSessionDescription)
from telemed_client import fetch_token

from tests.media import PatternTrack

CONNECT_DEADLINE = 30.0


def turn_url_for(urls: list[str], transport: str) -> str:
    """The one URL of the transport under test (aiortc uses only the first TURN URL)."""
    wanted = {"udp": ("turn:", "?transport=udp"), "tcp": ("turn:", "?transport=tcp"),
              "tls": ("turns:", "?transport=tcp")}[transport]
    return next(url for url in urls if url.startswith(wanted[0]) and url.endswith(wanted[1]))


async def publish(args: argparse.Namespace) -> tuple[RTCPeerConnection, float]:
    info = await fetch_token(args.url, args.room, args.password, role="device", name="Ambulance")
    turn = next(s for s in info["ice_servers"] if "credential" in s)
    server = RTCIceServer(urls=turn_url_for(turn["urls"], args.transport), username=turn["username"],
                          credential=turn["credential"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY))
    pc.addTransceiver(PatternTrack(), direction="sendonly")
    connected = asyncio.Event()
    pc.on("connectionstatechange", lambda: connected.set() if pc.connectionState == "connected" else None)
    await pc.setLocalDescription(await pc.createOffer())
    candidates = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")]
    if not candidates or not all(" typ relay" in line for line in candidates):
        raise RuntimeError(f"expected relay candidates only, got {candidates}")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{args.url}/whip/{args.room}", data=pc.localDescription.sdp, headers={
                "Authorization": f"Bearer {info['token']}", "Content-Type": "application/sdp"}) as r:
            answer = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHIP answered {r.status}: {answer}")
    started = time.monotonic()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await asyncio.wait_for(connected.wait(), CONNECT_DEADLINE)
    return pc, time.monotonic() - started


def probe_direct_udp(host: str, port: int) -> None:
    """One datagram straight to the server: the firewall must drop it (the test counts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"direct?", (host, port))
        except PermissionError:
            pass  # nft's drop on output can surface as EPERM


async def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("url", "room", "password", "transport", "probe_host"):
        parser.add_argument("--" + name.replace("_", "-"), dest=name, required=True)
    parser.add_argument("--probe-port", type=int, required=True)
    args = parser.parse_args()
    probe_direct_udp(args.probe_host, args.probe_port)
    pc = None
    try:
        pc, seconds = await publish(args)
        print(json.dumps({"connected": True, "seconds": round(seconds, 3)}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    finally:
        if pc is not None:
            await pc.close()


if __name__ == "__main__":
    asyncio.run(main())
