"""Graceful shutdown (SIGTERM from systemd, Docker or Kubernetes).

1. Drain: new joins are refused (`server-draining`; /healthz answers 503 so a load
   balancer stops sending people here) and every connected peer is told `reconnect`,
   so its client rejoins, through the balancer, on another node.
2. Recordings are closed while their media still flows in, so each ends on a complete
   record and a final manifest.
3. Peers get `shutdown_grace` seconds to leave; then the runner closes what remains.
4. A watchdog ends the process at `shutdown_timeout` whatever still hangs, so a stuck
   close never outlives the supervisor's patience (systemd's TimeoutStopSec).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from aiohttp import web

from .server import Server

log = logging.getLogger("telemed.shutdown")

RECONNECT = {"type": "reconnect", "reason": "server-shutdown",
             "error": "this server is shutting down: reconnect, you will be served by another"}


def arm_watchdog(timeout: float) -> threading.Timer:
    """Exit the process after `timeout` seconds unless cancelled (a thread: it fires
    even if the event loop is blocked)."""
    def expire() -> None:
        log.error("shutdown did not finish in time; exiting", extra={"fields": {"timeout": timeout}})
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    return timer


async def drain(server: Server, grace: float) -> None:
    """Steps 1-3 above; returns when every peer left or `grace` ran out."""
    server.draining = True
    await server.node.drain()  # in a cluster: no longer a candidate, its rooms free to move
    peers = [peer for room in list(server.live.rooms.values())
             for peer in (*room.peers.values(), *room.waiting.guests())]
    log.info("draining", extra={"fields": {"peers": len(peers), "rooms": len(server.live.rooms),
                                            "grace": grace}})
    for peer in peers:
        peer.notify({**RECONNECT, "retry_after": grace})
    await server.recordings.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while server.live.rooms and loop.time() < deadline:
        await asyncio.sleep(0.05)


async def stop(server: Server, runner: web.BaseRunner, grace: float) -> None:
    await drain(server, grace)
    await runner.cleanup()  # closes the listeners, the sockets left, then the server (on_shutdown)
    log.info("stopped")
