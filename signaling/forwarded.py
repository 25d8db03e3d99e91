"""Behind a reverse proxy the TCP peer is the proxy: the client's address, scheme and
host come in X-Forwarded-For/-Proto/-Host. Those headers are believed only from the
addresses in ``trusted_proxies`` (default none), since any client can send them.

The client is the right-most X-Forwarded-For entry that is not itself a trusted
proxy: entries further left were written by the client and prove nothing.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from .origins import normalize


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def forwarded_middleware(trusted: list[str]):
    networks = [ipaddress.ip_network(network) for network in trusted]

    def is_trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return ip is not None and any(ip in network for network in networks)

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if not networks or not is_trusted(_ip(request.remote or "")):
            return await handler(request)
        changes: dict[str, str] = {}
        hops = [hop for header in request.headers.getall("X-Forwarded-For", ())
                for hop in header.split(",")]
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                break  # garbage: stop believing anything further left
            changes["remote"] = str(ip)
            if not is_trusted(ip):
                break
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
        if proto in ("http", "https"):
            changes["scheme"] = proto
        host = request.headers.get("X-Forwarded-Host", "").split(",")[-1].strip()
        if host and normalize(f"http://{host}") is not None:
            changes["host"] = host
        return await handler(request.clone(**changes) if changes else request)

    return middleware
