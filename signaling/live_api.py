"""REST for live teaching: go live, stop, state, a viewer's signed link, kept streams
(VOD) and their chapters; and the HLS routes players fetch. Thin: the work is in streaming/."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from aiohttp import web

from clinical.actor import Actor
from rooms import Claims
from streaming.hls_access import HlsAccess
from streaming.hls_service import HlsError, HlsService
from streaming.playlist import fill, render_vod
from streaming.vod_library import VodError, trimmed
from streaming.request_limiter import RequestLimiter

from .auth import bearer, claims_for, host_actor, is_admin
from .cluster_node import Elsewhere
from .http_errors import HttpError, read_json
from .owner_redirect import redirect, to_owner
from .server import Server

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SIGNED = ("who", "exp", "sig")


def routes(server: Server) -> list[web.RouteDef]:
    settings = server.settings
    hls = HlsService(server.streams, HlsAccess(server.secret, settings.live_link_ttl),
                     RequestLimiter(settings.live_requests_per_second, 2 * settings.live_requests_per_second))

    async def require_host(request: web.Request, room: str) -> Actor:
        return await host_actor(server, request, room, "start, stop or edit the live stream")

    async def member(request: web.Request, room: str) -> Claims | None:
        if settings.admin_key and is_admin(server, request):
            return None
        return await claims_for(server, bearer(request), room)

    async def start(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        by = await require_host(request, name)
        room = await server.room(name)
        if room is None:
            raise HttpError(404, "not-found", "no such room")
        if name not in server.live.rooms:
            try:
                await server.node.locate(name)  # a room may go live just to be streamed
            except Elsewhere as exc:
                raise redirect(request, exc) from None
        live = server.live.get_or_create(room.name, room.layout, room.created_at)
        stream = await server.streams.start(live)
        await server.audit.record("live-start", by, name, f"live/{name}")
        return web.json_response({"live": stream.describe(), "playlist": f"/hls/{name}/index.m3u8"})

    async def stop(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        by = await require_host(request, name)
        await to_owner(server, request, name)
        if not await server.streams.stop(name):
            raise HttpError(409, "not-live", "the room is not live")
        await server.audit.record("live-stop", by, name, f"live/{name}")
        live = server.live.rooms.get(name)
        if live is not None:
            server.live.discard_if_empty(live)  # a room made only to go live
        return web.json_response({"live": server.streams.state(name)})

    async def state(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        await member(request, name)
        await to_owner(server, request, name)
        return web.json_response({"live": server.streams.state(name)})

    async def link(request: web.Request) -> web.Response:
        """A signed playlist link for the caller (a page hands it to its player)."""
        name = request.match_info["room"]
        claims = await member(request, name)
        if claims is not None and not claims.grants.subscribe:
            raise HttpError(403, "forbidden", "your role may not watch")
        who = claims.identity if claims is not None else "admin"
        query = hls.access.query(name, who)
        return web.json_response({"url": f"/hls/{name}/index.m3u8?{query}",
                                  "master_url": f"/hls/{name}/master.m3u8?{query}",
                                  "plain_url": f"/hls/{name}/plain.m3u8?{query}",
                                  "expires_in": hls.access.ttl})

    async def viewer(request: web.Request, room: str) -> tuple[str, str]:
        """(who, the query to carry on the playlist's URIs) of an HLS request. A signed link
        costs one HMAC; a bearer token is checked in full (the store: room closed, revoked)."""
        if "sig" in request.query:
            who = hls.signed_viewer(room, request.query)
            query = urlencode({k: request.query[k] for k in SIGNED})
        else:
            claims = await claims_for(server, bearer(request), room)
            if not claims.grants.subscribe:
                raise HttpError(403, "forbidden", "your role may not watch")
            who, query = claims.identity, ""
        hls.admit(request.remote or "?", who)
        return who, query

    async def playlist(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        variant = request.match_info["variant"]
        low_latency = variant != "plain"
        try:
            who, query = await viewer(request, name)
            await to_owner(server, request, name)  # the live program is made where the room is
            if variant == "master":
                text = await hls.master(name, who, query)
            else:
                rendition = int(variant[1:]) if variant.startswith("r") else 0
                text = await hls.playlist(name, who, request.query, query, low_latency, rendition)
        except HlsError as exc:
            raise HttpError(exc.status, exc.code, exc.message) from None
        # The plain variant may be cached for half a segment; the LL-HLS one is always fresh.
        cache = "max-age=1" if not low_latency else "no-cache"
        return web.Response(text=text, content_type=PLAYLIST_TYPE, headers={"Cache-Control": cache})

    async def media(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        try:
            await viewer(request, name)
            await to_owner(server, request, name)
            rendition = int(request.match_info.get("rendition", "0"))
            data = await hls.file(name, request.match_info["stream"], request.match_info["file"], rendition)
        except HlsError as exc:
            raise HttpError(exc.status, exc.code, exc.message) from None
        # Stream ids are in the path, so a part's bytes never change: cacheable.
        return web.Response(body=data, content_type="video/mp4", headers={"Cache-Control": "max-age=60"})

    # --- video on demand: streams kept after they stopped ---
    async def vod_call(action, *args):
        """Reading and decrypting the archive happens off the event loop."""
        try:
            return await asyncio.to_thread(action, *args)
        except VodError as exc:
            raise HttpError(exc.status, exc.code, exc.message) from None

    async def vod_list(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        claims = await member(request, name)
        query = hls.access.query(name, claims.identity if claims is not None else "admin")
        streams = await vod_call(server.vod.list, name)
        for stream in streams:
            stream["url"] = f"/hls/{name}/vod/{stream['stream']}/index.m3u8?{query}"
        return web.json_response({"streams": streams})

    async def vod_edit(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        by = await require_host(request, name)
        body = await read_json(request)
        stream = request.match_info["stream"]
        edited = await vod_call(server.vod.edit, name, stream, body)
        await server.audit.record("vod-edit", by, name, f"vod/{stream}", trim=edited["trim"],
                                  chapters=len(edited["chapters"]))
        return web.json_response(edited)

    async def vod_playlist(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        try:
            _, query = await viewer(request, name)
        except HlsError as exc:
            raise HttpError(exc.status, exc.code, exc.message) from None
        stream = request.match_info["stream"]
        manifest = await vod_call(server.vod.manifest, name, stream)
        text = render_vod(manifest, trimmed(manifest))
        return web.Response(text=fill(text, query), content_type=PLAYLIST_TYPE,
                            headers={"Cache-Control": "no-cache"})

    async def vod_media(request: web.Request) -> web.Response:
        name = request.match_info["room"]
        try:
            await viewer(request, name)
        except HlsError as exc:
            raise HttpError(exc.status, exc.code, exc.message) from None
        data = await vod_call(server.vod.media, name, request.match_info["stream"], request.match_info["file"])
        return web.Response(body=data, content_type="video/mp4", headers={"Cache-Control": "max-age=3600"})

    return [
        web.get("/api/rooms/{room}/vod", vod_list),
        web.put("/api/rooms/{room}/vod/{stream}", vod_edit),
        web.get(r"/hls/{room}/vod/{stream:[0-9a-f]{1,32}}/index.m3u8", vod_playlist),
        web.get(r"/hls/{room}/vod/{stream:[0-9a-f]{1,32}}/{file}", vod_media),
        web.post("/api/rooms/{room}/live", start),
        web.post("/api/rooms/{room}/live/stop", stop),
        web.delete("/api/rooms/{room}/live", stop),
        web.get("/api/rooms/{room}/live", state),
        web.post("/api/rooms/{room}/live/link", link),
        web.get(r"/hls/{room}/{variant:index|plain|master|r[1-9]}.m3u8", playlist),
        web.get(r"/hls/{room}/{stream:[0-9a-f]{1,32}}/{file}", media),
        web.get(r"/hls/{room}/{stream:[0-9a-f]{1,32}}/r{rendition:[1-9]}/{file}", media),
    ]
