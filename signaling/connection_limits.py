"""Per-address connection caps: one client address may hold at most N TCP connections
at once (slow or half-sent requests, idle keep-alives and WebSockets all count).

aiohttp's low-level `web.Server` learns of every connection through its
`connection_made`/`connection_lost` calls, before any byte is parsed; that is where
the count is kept. A refused connection gets a complete `429` JSON answer and is
closed, so a client sees why. Keep-alive is untouched: a connection counts once
however many requests it carries. Addresses of trusted reverse proxies are exempt:
every client arrives through them, and the proxy caps its clients itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections import Counter
from collections.abc import Sequence

from aiohttp import web

from .config import Settings

log = logging.getLogger("telemed.edge")

_BODY = json.dumps({"error": "too many connections from your address", "code": "too-many-connections"}).encode()
_REFUSAL = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(_BODY)).encode() + b"\r\nRetry-After: 1\r\n"
            b"Connection: close\r\n\r\n" + _BODY)


class ConnectionCaps:
    def __init__(self, per_address: int, exempt: Sequence[str] = ()) -> None:
        self.per_address = per_address
        self._exempt = [ipaddress.ip_network(network) for network in exempt]
        self.open: Counter[str] = Counter()
        self.refused = 0
        self._counted: dict[web.RequestHandler, str] = {}  # handler -> the address it counts against

    def attach(self, server: web.Server) -> None:
        """Wrap the server's connection bookkeeping (an instance's own methods, so
        aiohttp's classes stay as they are)."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: web.RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._admit(handler, transport)

        def connection_lost(handler: web.RequestHandler, exc: BaseException | None = None) -> None:
            self._release(handler)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _admit(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) and peer else None
        if address is None or self._is_exempt(address):
            return
        if self.open[address] >= self.per_address:
            self.refused += 1
            if self.refused % 100 == 1:  # not one log line per refused connection
                log.warning("connections refused", extra={"fields": {
                    "address": address, "open": self.open[address], "refused_total": self.refused}})
            transport.write(_REFUSAL)
            handler.force_close()
            transport.close()
            return
        self.open[address] += 1
        self._counted[handler] = address

    def _release(self, handler: web.RequestHandler) -> None:
        address = self._counted.pop(handler, None)
        if address is not None:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]

    def _is_exempt(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._exempt)


class EdgeRunner(web.AppRunner):
    """An AppRunner whose server counts connections per address. `_make_server` is
    aiohttp's hook for runner subclasses; tests/test_edge_connections.py fails if an
    upgrade stops calling it or the server's connection callbacks."""

    def __init__(self, app: web.Application, caps: ConnectionCaps, **kwargs: object) -> None:
        super().__init__(app, **kwargs)
        self.caps = caps

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        self.caps.attach(server)
        return server


def edge_runner(app: web.Application, settings: Settings, **kwargs: object) -> EdgeRunner:
    return EdgeRunner(app, ConnectionCaps(settings.max_connections_per_address, settings.trusted_proxies),
                      **kwargs)
