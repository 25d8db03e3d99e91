"""REST: invite links (hosts, the admin key or an API key) and API keys (the admin key)."""

from __future__ import annotations

import re

from aiohttp import web

from rooms import ApiKey, Invite
from rooms.invites import DEFAULT_INVITE_TTL

from .auth import bearer, claims_for, operator
from .http_errors import HttpError, read_json
from .server import Server

_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def routes(server: Server) -> list[web.RouteDef]:
    async def require_room_manager(request: web.Request, room: str) -> None:
        if await operator(server, request) is not None:
            return
        claims = await claims_for(server, bearer(request), room)
        if not claims.grants.admin:
            raise HttpError(403, "forbidden", "only a host may manage this room's invitations")

    async def require_key_admin(request: web.Request) -> None:
        # An API key may not mint more API keys, and an open embedded server hands out none.
        if not server.settings.admin_key:
            raise HttpError(403, "forbidden", "set an admin key to manage API keys")
        if await operator(server, request) != "admin":
            raise HttpError(401, "unauthorized", "admin key required")

    async def create_invite(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        await require_room_manager(request, name)
        body = await read_json(request)
        room = await server.room(name)
        if room is None:
            raise HttpError(404, "not-found", "no such room")
        try:
            invite = Invite.new(name, room.incarnation, body.get("role"),
                                body.get("expires_in", DEFAULT_INVITE_TTL), body.get("max_uses"),
                                body.get("label"))
        except ValueError as exc:
            raise HttpError(400, "bad-request", str(exc)) from None
        await server.credentials.add_invite(invite)
        code = server.invites.encode(invite)
        return web.json_response({"invite": invite.to_public_dict(), "code": code,
                                  "link": f"/?invite={code}"}, status=201)

    async def list_invites(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        await require_room_manager(request, name)
        room = await server.room(name)
        if room is None:
            raise HttpError(404, "not-found", "no such room")
        invites = await server.credentials.list_invites(name, room.incarnation)
        return web.json_response({"invites": [i.to_public_dict() for i in invites]})

    async def revoke_invite(request: web.Request) -> web.Response:
        name, invite_id = request.match_info["room"], request.match_info["invite"]
        await require_room_manager(request, name)
        if not _ID_RE.fullmatch(invite_id) or not await server.credentials.revoke_invite(name, invite_id):
            raise HttpError(404, "not-found", "no such invitation")
        return web.Response(status=204)

    async def create_key(request: web.Request) -> web.Response:
        await require_key_admin(request)
        body = await read_json(request)
        try:
            key, secret = ApiKey.new(body.get("name"))
        except ValueError as exc:
            raise HttpError(400, "bad-request", str(exc)) from None
        await server.credentials.add_api_key(key)
        return web.json_response({**key.to_public_dict(), "secret": secret}, status=201)

    async def list_keys(request: web.Request) -> web.Response:
        await require_key_admin(request)
        keys = await server.credentials.list_api_keys()
        return web.json_response({"keys": [k.to_public_dict() for k in keys]})

    async def revoke_key(request: web.Request) -> web.Response:
        await require_key_admin(request)
        key_id = request.match_info["key"]
        if not _ID_RE.fullmatch(key_id) or not await server.credentials.revoke_api_key(key_id):
            raise HttpError(404, "not-found", "no such API key")
        return web.Response(status=204)

    return [
        web.post("/api/rooms/{room}/invites", create_invite),
        web.get("/api/rooms/{room}/invites", list_invites),
        web.delete("/api/rooms/{room}/invites/{invite}", revoke_invite),
        web.post("/api/keys", create_key),
        web.get("/api/keys", list_keys),
        web.delete("/api/keys/{key}", revoke_key),
    ]
