"""Reading credentials off requests: bearer tokens and the admin key."""

from __future__ import annotations

import hmac

from aiohttp import web

from clinical.actor import Actor
from rooms import Claims, TokenError

from .http_errors import HttpError
from .server import Server


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def is_admin(server: Server, request: web.Request) -> bool:
    key = server.settings.admin_key
    if not key:
        return True  # embedded default: no admin key configured
    presented = bearer(request)
    return presented is not None and hmac.compare_digest(presented.encode(), key.encode())


def admin_actor(server: Server, request: web.Request) -> Actor:
    """Whoever acts with the admin key (or on a server that configured none)."""
    credential = "admin-key" if server.settings.admin_key else "none"
    return Actor("admin", credential=credential, address=request.remote or "")


def require_admin(server: Server, request: web.Request) -> None:
    if not is_admin(server, request):
        raise HttpError(401, "unauthorized", "admin key required")


def claims_for(server: Server, token: str | None, room: str | None) -> Claims:
    if not token:
        raise HttpError(401, "unauthorized", "a bearer token is required")
    try:
        return server.tokens.verify(token, room=room)
    except TokenError as exc:
        raise HttpError(exc.status, "unauthorized" if exc.status == 401 else "forbidden", exc.message) from None
