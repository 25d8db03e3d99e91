"""REST: rooms and tokens."""

from __future__ import annotations

import time

from aiohttp import web

from clinical.actor import Actor
from clinical.storage import StorageUnavailable
from conference.actors import actor_for
from rooms import (Room, RoomExists, RoomSettings, check_password_strength, check_role_passwords,
                   hash_role_passwords, validate_room_name)

from .auth import bearer, claims_for, operator, operator_actor
from .http_errors import HttpError, read_json
from .owner_redirect import to_owner
from .server import Server
from .token_request import display_name, entitlement, grant_role, hash_slot, requested_role


def routes(server: Server) -> list[web.RouteDef]:
    async def create_room(request: web.Request) -> web.Response:
        who = await operator(server, request)
        if who is None and server.settings.admin_key:
            raise HttpError(401, "unauthorized", "admin key or API key required")
        body = await read_json(request)
        try:
            name = validate_room_name(body.get("name"))
            password = body.get("password")
            check_password_strength(password, name)
            settings = RoomSettings.from_dict(body.get("settings") or {})
            role_passwords = check_role_passwords(password, body.get("passwords"), name)
        except (ValueError, TypeError) as exc:
            raise HttpError(400, "bad-request", str(exc)) from None
        password_hash = await hash_slot(server.passwords.hash(password))
        role_hashes = await hash_slot(server.passwords.run(hash_role_passwords, password_hash, role_passwords))
        room = Room(name=name, password_hash=password_hash, created_at=time.time(), settings=settings,
                    role_password_hashes=role_hashes)
        try:
            await server.store.create(room)
        except RoomExists:
            raise HttpError(409, "exists", f"room {name!r} already exists") from None
        try:
            await server.audit.record("room-created", operator_actor(request, who), name, room.incarnation,
                                      settings=settings.to_dict())
        except StorageUnavailable:
            await server.store.delete(name)  # a room nobody can audit is not created
            raise
        return web.json_response({"room": room.to_public_dict()}, status=201)

    async def get_room(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        if await operator(server, request) is None:
            await claims_for(server, bearer(request), name)
        await to_owner(server, request, name)  # its participants are there
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
        who = await operator(server, request)
        if who is None:
            claims = await claims_for(server, bearer(request), name)
            if not claims.grants.admin:
                raise HttpError(403, "forbidden", "only a host may close the room")
            actor = actor_for(claims, request.remote or "")
        else:
            actor = operator_actor(request, who)
        await to_owner(server, request, name)  # whose node tells its peers the room closed
        live = server.live.rooms.get(name)
        if live is not None:
            for peer in list(live.peers.values()):
                peer.notify({"type": "kicked", "reason": "room closed"})
                await server.leave(peer)
        if not await server.store.delete(name):
            raise HttpError(404, "not-found", "no such room")
        await server.credentials.delete_invites(name)
        await server.audit.record("room-deleted", actor, name)
        return web.Response(status=204)

    async def issue_token(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        body = await read_json(request)
        # Checked first, so that a malformed request costs no login attempt and no invite use.
        wanted, display = requested_role(body), display_name(body.get("name"))
        presented = next((k for k in ("password", "invite", "id_token") if k in body), None)
        try:
            granted = await entitlement(server, request, name, body, wanted)
        except HttpError as exc:
            if exc.status in (401, 403, 404, 410):  # a credential refused (not a malformed or throttled ask)
                server.audit.record_soon("login-failed", Actor.anonymous(request.remote or "", presented or ""),
                                         name, code=exc.code, role=wanted.value if wanted else None,
                                         name=display)
            raise
        role = grant_role(granted.role, wanted)
        display = display or granted.name or role.value
        recordings = body.get("recordings", False)
        if not isinstance(recordings, bool):
            raise HttpError(400, "bad-request", "recordings must be true or false")
        if recordings and presented is not None:  # only a vouching operator adds grants
            raise HttpError(403, "grant-not-allowed", "only an admin or API key may grant access to recordings")
        token = server.tokens.issue(name, role, granted.identity, display, credential=granted.credential,
                                    incarnation=granted.room.incarnation, recordings=recordings)
        claims = server.tokens.verify(token, room=name)
        # On record before it is handed out: no token the trail does not know of. A person's
        # own credential is a login; an operator (admin or API key) vouching mints one.
        await server.audit.record("login" if presented else "token-minted",
                                  actor_for(claims, request.remote or ""), name, claims.token_id,
                                  incarnation=claims.incarnation)
        return web.json_response({
            "token": token, "expires_in": server.settings.token_ttl, "expires_at": claims.expires_at,
            "identity": claims.identity, "role": role.value, "grants": claims.grants.to_dict(),
            "ice_servers": server.ice_servers.for_identity(claims.identity),
        })

    async def config(request: web.Request) -> web.Response:
        return web.json_response({"ice_servers": server.ice_servers.public})

    async def healthz(request: web.Request) -> web.Response:
        if server.draining:  # a load balancer sends nobody new here (signaling/shutdown.py)
            return web.json_response({"status": "draining", "rooms": len(server.live.rooms)}, status=503)
        return web.json_response({"status": "ok", "rooms": len(server.live.rooms), "node": server.node.id})

    return [
        web.post("/api/rooms", create_room),
        web.get("/api/rooms/{room}", get_room),
        web.delete("/api/rooms/{room}", delete_room),
        web.post("/api/rooms/{room}/token", issue_token),
        web.get("/api/config", config),
        web.get("/healthz", healthz),
    ]

