"""Which web pages may open our WebSocket: browsers send the page's ``Origin`` on the
upgrade, and a page on another site must not ride a user's network position (or a
token it stole) into a consult. Clients that are not browsers send no Origin and are
let through; their token is what admits them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port; None if it is not one."""
    try:
        url = urlsplit(origin.strip())
        port = url.port
    except ValueError:
        return None
    if url.scheme not in _DEFAULT_PORTS or not url.hostname or url.path not in ("", "/") \
            or url.query or url.fragment or url.username or url.password:
        return None
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    if port is not None and port != _DEFAULT_PORTS[url.scheme]:
        host = f"{host}:{port}"
    return f"{url.scheme}://{host}"


class OriginPolicy:
    def __init__(self, allowed: list[str], also: Callable[[], Iterable[str]] = tuple) -> None:
        """``also``: origins allowed as they come and go (a cluster's nodes, whose pages
        send their joins here: docs/multinode.md)."""
        normalized = [normalize(origin) for origin in allowed]
        bad = [origin for origin, n in zip(allowed, normalized) if n is None]
        if bad:
            raise ValueError(f"not an origin (scheme://host[:port]): {', '.join(bad)}")
        self._allowed = set(normalized)
        self._also = also

    def allows(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        theirs = normalize(origin)
        return theirs is not None and (theirs in self._allowed
                                       or theirs == normalize(f"{request.scheme}://{request.host}")
                                       or theirs in {normalize(url) for url in self._also()})
