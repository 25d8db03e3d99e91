"""Security headers on every response the app prepares: pages, files, JSON, errors.

The CSP allows only our own scripts and styles (no inline code, no eval), our own
connections (fetch and the WebSocket; CSP3 lets 'self' match ws:/wss: of the same
host), images from ourselves and data:/blob: URLs (previews, QR codes), and no
framing, so a hostile site cannot overlay the consult page (clickjacking).
"""

from __future__ import annotations

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


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
