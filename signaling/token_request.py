"""What a token request's credential entitles it to.

Exactly one credential decides: a room password (the role whose password it is), an invite
(its role), an identity provider's id_token (its mapped role), or, with none of these, the
caller's admin key or API key (any role; such a hospital system vouches for the identity).
The request may ask for a lower role than its credential gives, never a higher one, and
only a vouching system may name the identity.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from rooms import HasherBusy, InviteError, OidcError, Role, Room, Throttled, may_yield, role_for_password
from rooms.invites import GONE

from .auth import operator
from .http_errors import HttpError
from .server import Server

T = TypeVar("T")
MAX_DISPLAY_NAME = 64
MAX_VOUCHED_IDENTITY = 128
_CREDENTIALS = ("password", "invite", "id_token")


@dataclass(frozen=True, slots=True)
class Entitlement:
    room: Room
    role: Role            # the highest role the credential gives
    identity: str
    name: str | None      # a display name the credential itself carries, if any
    credential: str       # e.g. "password:viewer", "invite:<id>", "apikey:<kid>"


def requested_role(body: dict) -> Role | None:
    value = body.get("role")
    if value is None:
        return None
    try:
        return Role(value)
    except ValueError:
        raise HttpError(400, "bad-request", "role must be host, participant, viewer or device") from None


def grant_role(ceiling: Role, wanted: Role | None) -> Role:
    """The role to put in the token: ``wanted`` if the credential's ``ceiling`` covers it."""
    if wanted is None:
        return ceiling
    if not may_yield(ceiling, wanted):
        raise HttpError(403, "role-not-allowed",
                        f"this credential gives at most the {ceiling.value} role, not {wanted.value}")
    return wanted


def display_name(value: Any) -> str | None:
    """The checked display name, or None when the request names none."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_DISPLAY_NAME \
            or not value.isprintable():
        raise HttpError(400, "bad-name",
                        f"name must be 1-{MAX_DISPLAY_NAME} printable characters, without control characters")
    return value


async def entitlement(server: Server, request: web.Request, room_name: str, body: dict,
                      wanted: Role | None) -> Entitlement:
    given = [kind for kind in _CREDENTIALS if kind in body]
    if len(given) > 1:
        raise HttpError(400, "bad-request", "send one of password, invite or id_token")
    if not given:
        return await _vouched(server, request, room_name, body)
    if "identity" in body:
        raise HttpError(400, "identity-not-allowed",
                        "the server assigns identities; send only a display name")
    if given[0] == "password":
        return await _password(server, request, room_name, body["password"])
    if given[0] == "invite":
        return await _invite(server, room_name, body["invite"], wanted)
    return await _id_token(server, room_name, body["id_token"])


def _new_identity() -> str:
    return uuid.uuid4().hex


async def _password(server: Server, request: web.Request, room_name: str, password: Any) -> Entitlement:
    """401 unless ``password`` opens a role in the room; 429 at once when the limiter says so.
    The same work is done whether the room exists or not, so the answer does not tell."""
    address = request.remote or "?"
    try:
        attempt = await server.reserve_login(address, room_name)
    except Throttled as exc:
        server.metrics.login_throttled.inc()
        raise HttpError(429, "rate-limited", exc.message, {"Retry-After": str(exc.retry_after)}) from None
    with attempt:
        room = await server.room(room_name)
        try:
            role = await hash_slot(server.passwords.run(role_for_password, password, room,
                                                        priority=attempt.priority))
        except HttpError:
            attempt.withdraw()  # never checked: the server was busy, not the caller wrong
            raise
        if role is not None:
            attempt.succeeded()
            return Entitlement(room, role, _new_identity(), None, f"password:{role.value}")
    server.login_failed(address, room_name)
    raise HttpError(401, "unauthorized", "wrong room or password")


async def hash_slot(check: Awaitable[T]) -> T:
    try:
        return await check
    except HasherBusy:
        raise HttpError(503, "busy", "too many password checks are waiting; try again shortly",
                        {"Retry-After": "1"}) from None


async def _invite(server: Server, room_name: str, code: Any, wanted: Role | None) -> Entitlement:
    # Not subject to the password lockout: the code is signed, so it cannot be guessed, and
    # someone behind the same address as an attacker can still come in with one.
    try:
        invite_id, role = server.invites.decode(code, room_name)
        grant_role(role, wanted)  # refused before a use is spent
        room = await server.room(room_name)
        if room is None:
            raise GONE
        invite = await server.credentials.redeem_invite(room_name, invite_id, time.time())
        if invite.incarnation != room.incarnation:
            raise GONE
    except InviteError as exc:
        raise HttpError(exc.status, exc.code, exc.message) from None
    return Entitlement(room, invite.role, _new_identity(), None, f"invite:{invite.id}")


async def _id_token(server: Server, room_name: str, id_token: Any) -> Entitlement:
    if server.oidc is None:
        raise HttpError(400, "oidc-disabled", "this server accepts no identity provider tokens")
    try:
        external = await asyncio.to_thread(server.oidc.verify, id_token)
    except OidcError as exc:
        raise HttpError(exc.status, exc.code, exc.message) from None
    room = await _existing_room(server, room_name)
    return Entitlement(room, external.role, external.identity, external.name, f"oidc:{external.issuer}")


async def _vouched(server: Server, request: web.Request, room_name: str, body: dict) -> Entitlement:
    who = await operator(server, request)
    if who is None:
        raise HttpError(401, "unauthorized", "send the room password, an invite or an id_token")
    if body.get("role") is None:
        raise HttpError(400, "bad-request", "name the role of the token to mint")
    identity = body.get("identity")
    if identity is None:
        identity = _new_identity()
    elif not isinstance(identity, str) or not 0 < len(identity) <= MAX_VOUCHED_IDENTITY \
            or not identity.isprintable():
        raise HttpError(400, "bad-request", f"identity must be 1-{MAX_VOUCHED_IDENTITY} printable characters")
    room = await _existing_room(server, room_name)
    return Entitlement(room, Role.HOST, identity, None, who)


async def _existing_room(server: Server, room_name: str) -> Room:
    room = await server.room(room_name)
    if room is None:
        raise HttpError(404, "not-found", "no such room")
    return room
