"""REST: rooms and tokens."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from rooms import (
    HasherBusy,
    Role,
    Room,
    RoomExists,
    RoomSettings,
    Throttled,
    check_password_strength,
    validate_room_name,
)

from .auth import bearer, claims_for, is_admin, require_admin
from .http_errors import HttpError, read_json
from .server import Server

MAX_NAME = 64
T = TypeVar("T")


def routes(server: Server) -> list[web.RouteDef]:
    async def create_room(request: web.Request) -> web.Response:
        require_admin(server, request)
        body = await read_json(request)
        try:
            name = validate_room_name(body.get("name"))
            password = body.get("password")
            check_password_strength(password, name)
            settings = RoomSettings.from_dict(body.get("settings") or {})
        except (ValueError, TypeError) as exc:
            raise HttpError(400, "bad-request", str(exc)) from None
        password_hash = await hash_slot(server.passwords.hash(password))
        room = Room(name=name, password_hash=password_hash, created_at=time.time(), settings=settings)
        try:
            await server.store.create(room)
        except RoomExists:
            raise HttpError(409, "exists", f"room {name!r} already exists") from None
        return web.json_response({"room": room.to_public_dict()}, status=201)

    async def get_room(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        if not is_admin(server, request) or not server.settings.admin_key:
            claims_for(server, bearer(request), name)
        room = await server.room(name)
        if room is None:
            raise HttpError(404, "not-found", "no such room")
        live = server.live.rooms.get(name)
        return web.json_response({
            "room": room.to_public_dict(),
            "participants": live.participants() if live else [],
            "tracks": live.tracks() if live else [],
        })

    async def delete_room(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        if not (server.settings.admin_key and is_admin(server, request)):
            claims = claims_for(server, bearer(request), name)
            if not claims.grants.admin:
                raise HttpError(403, "forbidden", "only a host may close the room")
        live = server.live.rooms.get(name)
        if live is not None:
            for peer in list(live.peers.values()):
                peer.notify({"type": "kicked", "reason": "room closed"})
                await server.leave(peer)
        if not await server.store.delete(name):
            raise HttpError(404, "not-found", "no such room")
        return web.Response(status=204)

    async def issue_token(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        body = await read_json(request)
        try:
            role = Role(body.get("role", "participant"))
        except ValueError:
            raise HttpError(400, "bad-request", "role must be host, participant, viewer or device") from None
        display = body.get("name", "")
        if not isinstance(display, str) or len(display) > MAX_NAME:
            raise HttpError(400, "bad-request", f"name must be a string of at most {MAX_NAME} characters")
        identity = body.get("identity") or uuid.uuid4().hex
        if not isinstance(identity, str) or len(identity) > 128:
            raise HttpError(400, "bad-request", "identity must be a short string")
        if bool(server.settings.admin_key) and is_admin(server, request):
            if await server.room(name) is None:
                raise HttpError(404, "not-found", "no such room")
        else:
            await check_password(request.remote or "?", name, body.get("password"))
        token = server.tokens.issue(name, role, identity, display or role.value)
        claims = server.tokens.verify(token, room=name)
        return web.json_response({
            "token": token, "expires_in": server.settings.token_ttl, "identity": identity,
            "role": role.value, "grants": claims.grants.to_dict(),
            "ice_servers": server.settings.ice_servers,
        })

    async def check_password(address: str, name: str, password: object) -> None:
        """401 unless ``password`` opens room ``name``; 429 at once when the limiter says so,
        before even looking the room up. The same work is done whether the room exists or
        not, so the answer does not tell."""
        try:
            attempt = server.login_limiter.reserve(address, name)
        except Throttled as exc:
            server.metrics.login_throttled += 1
            raise HttpError(429, "rate-limited", exc.message, {"Retry-After": str(exc.retry_after)}) from None
        with attempt:
            room = await server.room(name)
            stored = room.password_hash if room is not None else None
            try:
                ok = await hash_slot(server.passwords.verify(password, stored, attempt.priority))
            except HttpError:
                attempt.withdraw()  # never checked: the server was busy, not the caller wrong
                raise
            if ok:
                attempt.succeeded()
                return
        server.login_failed(address, name)
        raise HttpError(401, "unauthorized", "wrong room or password")

    async def config(request: web.Request) -> web.Response:
        return web.json_response({"ice_servers": server.settings.ice_servers})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "rooms": len(server.live.rooms)})

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=server.metrics.render(), content_type="text/plain")

    return [
        web.post("/api/rooms", create_room),
        web.get("/api/rooms/{room}", get_room),
        web.delete("/api/rooms/{room}", delete_room),
        web.post("/api/rooms/{room}/token", issue_token),
        web.get("/api/config", config),
        web.get("/healthz", healthz),
        web.get("/metrics", metrics),
    ]


async def hash_slot(check: Awaitable[T]) -> T:
    try:
        return await check
    except HasherBusy:
        raise HttpError(503, "busy", "too many password checks are waiting; try again shortly",
                        {"Retry-After": "1"}) from None
