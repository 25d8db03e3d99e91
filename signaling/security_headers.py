"""Security headers on every response: pages, files, JSON, errors.

The CSP allows only our own scripts and styles (no inline code, no eval), our own
connections (fetch and the WebSocket; CSP3 lets 'self' match ws:/wss: of the same
host), images from ourselves and data:/blob: URLs (previews, QR codes), and no
framing, so a hostile site cannot overlay the consult page (clickjacking).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP2
    "Referrer-Policy": "no-referrer",  # links carry room names and signed object links
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self), "
                          "geolocation=(), payment=()",
}
# Only over TLS (RFC 6797 §7.2): over plain HTTP a man in the middle could strip or forge it.
HSTS = "max-age=31536000"


def _add(request: web.Request, headers, policy: str) -> None:
    for name, value in HEADERS.items():
        headers.setdefault(name, value)
    headers["Content-Security-Policy"] = policy
    if request.secure:
        headers.setdefault("Strict-Transport-Security", HSTS)


def security_headers(connect_to: Callable[[], Iterable[str]] = tuple,
                     refresh: Callable[[], Awaitable[None]] | None = None) -> web.middleware:
    """``connect_to``: base URLs besides our own that pages may open connections to (the
    other nodes of a cluster, to which a join may be moved: docs/multinode.md);
    ``refresh``: brings that list up to date, awaited before a page (HTML) is sent, whose
    policy holds for as long as it stays open."""

    def policy() -> str:
        urls = sorted(set(connect_to()))
        if not urls:
            return CONTENT_SECURITY_POLICY
        sources = " ".join(f"{url} {url.replace('http', 'ws', 1)}" for url in urls)
        return CONTENT_SECURITY_POLICY.replace("connect-src 'self'", f"connect-src 'self' {sources}")

    @web.middleware
    async def security_headers_middleware(request: web.Request, handler) -> web.StreamResponse:
        """A middleware, not a response signal: it sees the request as the trusted-proxy
        middleware rewrote it, so HSTS follows the client's scheme, not the proxy's."""
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and the like, raised past the error middleware
            _add(request, exc.headers, policy())
            raise
        if not response.prepared:  # a WebSocket or a stream has sent its head already
            if refresh is not None and (request.path == "/" or request.path.endswith(".html")):
                await refresh()
            _add(request, response.headers, policy())
        return response

    return security_headers_middleware
