"""Reading credentials off requests: bearer tokens, the admin key and API keys."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web

from clinical.actor import Actor
from conference.actors import actor_for
from rooms import Claims, Grants, TokenError, split_presented

from .http_errors import HttpError
from .config import reveal
from .server import Server


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def is_admin(server: Server, request: web.Request) -> bool:
    key = reveal(server.settings.admin_key)
    if not key:
        return True  # embedded default: no admin key configured
    presented = bearer(request)
    return presented is not None and hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), key.encode())


def operator_actor(request: web.Request, operator: str | None) -> Actor:
    """An operator as the audit trail names it: ``operator()``'s answer is both the identity
    and the credential; None is a server without an admin key, open on localhost."""
    return Actor(operator or "operator", credential=operator or "none", address=request.remote or "")


async def operator(server: Server, request: web.Request) -> str | None:
    """``"admin"`` for a configured admin key, ``"apikey:<id>"`` for a live API key, else None.

    A bearer shaped like an API key that is unknown, wrong or revoked is refused outright,
    so that a hospital system learns at once that its key stopped working.
    """
    if server.settings.admin_key and is_admin(server, request):
        return "admin"
    presented = split_presented(bearer(request))
    if presented is None:
        return None
    key_id, secret = presented
    key = await server.credentials.get_api_key(key_id)
    if key is None or not key.matches(secret):
        raise HttpError(401, "unauthorized", "unknown or revoked API key")
    return f"apikey:{key_id}"


async def claims_for(server: Server, token: str | None, room: str | None) -> Claims:
    if not token:
        raise HttpError(401, "unauthorized", "a bearer token is required")
    try:
        return await server.verify(token, room=room)
    except TokenError as exc:
        raise HttpError(exc.status, "unauthorized" if exc.status == 401 else "forbidden", exc.message) from None


async def host_actor(server: Server, request: web.Request, room: str,
                     what: str = "manage recordings") -> Actor:
    """The admin key, an API key, or a host token of this room (else 401/403); returns who
    acts, as the audit trail names them."""
    return await _actor_granted(server, request, room, lambda g: g.admin, f"only a host may {what}")


async def recordings_reader(server: Server, request: web.Request, room: str) -> Actor:
    """Who may open the room's recordings: an operator, a host, or a token carrying the
    ``recordings`` grant (which only an operator mints)."""
    return await _actor_granted(server, request, room, lambda g: g.admin or g.recordings,
                                "only a host, or a token granted access to recordings, may open them")


async def _actor_granted(server: Server, request: web.Request, room: str,
                         allowed: Callable[[Grants], bool], refusal: str) -> Actor:
    who = await operator(server, request)
    if who is not None:
        return operator_actor(request, who)
    claims = await claims_for(server, bearer(request), room)
    if not allowed(claims.grants):
        raise HttpError(403, "forbidden", refusal)
    return actor_for(claims, request.remote or "")
