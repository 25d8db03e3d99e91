"""REST: rooms and tokens."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiohttp import web

from clinical.actor import Actor
from clinical.storage import StorageUnavailable
from conference.actors import actor_for
from rooms import Role, RoomExists, Room, RoomSettings, hash_password, validate_room_name, verify_password

from .auth import admin_actor, bearer, claims_for, is_admin, require_admin
from .http_errors import HttpError, read_json
from .server import Server

MAX_NAME = 64


def routes(server: Server) -> list[web.RouteDef]:
    async def create_room(request: web.Request) -> web.Response:
        require_admin(server, request)
        body = await read_json(request)
        try:
            name = validate_room_name(body.get("name"))
            password = body.get("password")
            if not isinstance(password, str):
                raise ValueError("password must be a string")
            settings = RoomSettings.from_dict(body.get("settings") or {})
            password_hash = await asyncio.to_thread(hash_password, password)
        except (ValueError, TypeError) as exc:
            raise HttpError(400, "bad-request", str(exc)) from None
        room = Room(name=name, password_hash=password_hash, created_at=time.time(), settings=settings)
        try:
            await server.store.create(room)
        except RoomExists:
            raise HttpError(409, "exists", f"room {name!r} already exists") from None
        try:
            await server.audit.record("room-created", admin_actor(server, request), name, name,
                                      settings=settings.to_dict())
        except StorageUnavailable:
            await server.store.delete(name)  # a room nobody can audit is not created
            raise
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
        if server.settings.admin_key and is_admin(server, request):
            actor = admin_actor(server, request)
        else:
            claims = claims_for(server, bearer(request), name)
            if not claims.grants.admin:
                raise HttpError(403, "forbidden", "only a host may close the room")
            actor = actor_for(claims, request.remote or "")
        live = server.live.rooms.get(name)
        if live is not None:
            for peer in list(live.peers.values()):
                peer.notify({"type": "kicked", "reason": "room closed"})
                await server.leave(peer)
        if not await server.store.delete(name):
            raise HttpError(404, "not-found", "no such room")
        await server.audit.record("room-deleted", actor, name, name)
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
        room = await server.room(name)
        admin = bool(server.settings.admin_key) and is_admin(server, request)
        key = (request.remote or "?", name)
        wait = server.login_limiter.check(key)
        if wait > 0 and not admin:
            raise HttpError(429, "rate-limited", "too many failed attempts; try again later",
                            {"Retry-After": str(int(wait) + 1)})
        if not admin:
            password = body.get("password")
            ok = room is not None and await asyncio.to_thread(verify_password, password, room.password_hash)
            if not ok:
                server.login_limiter.failed(key)
                server.audit.record_soon("login-failed", Actor.anonymous(request.remote or "", "password"),
                                         name, "", role=role.value, name=display)
                raise HttpError(401, "unauthorized", "wrong room or password")
            server.login_limiter.succeeded(key)
        elif room is None:
            raise HttpError(404, "not-found", "no such room")
        token = server.tokens.issue(name, role, identity, display or role.value)
        claims = server.tokens.verify(token, room=name)
        # On record before the token is handed out: no token the trail does not know of.
        if admin:
            await server.audit.record("token-minted", admin_actor(server, request), name, claims.token_id,
                                      via="admin-key", identity=identity, role=role.value)
        else:
            await server.audit.record("login", actor_for(claims, request.remote or "", "password"), name,
                                      claims.token_id)
        return web.json_response({
            "token": token, "expires_in": server.settings.token_ttl, "identity": identity,
            "role": role.value, "grants": claims.grants.to_dict(),
            "ice_servers": server.settings.ice_servers,
        })

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
