"""REST for recordings: start, stop, list, read the manifest, delete. Thin: the work is in
``recorder.RecordingManager``; who may do it is decided in ``auth`` alone (host_actor, recordings_reader)."""

from __future__ import annotations

from aiohttp import web

from recorder import RecordingError

from .auth import host_actor, recordings_reader
from .http_errors import HttpError
from .owner_redirect import to_owner
from .recording_links import with_links
from .server import Server


def routes(server: Server) -> list[web.RouteDef]:
    manager = server.recordings

    async def start(request: web.Request) -> web.Response:
        room = request.match_info["room"]
        by = await host_actor(server, request, room)
        await to_owner(server, request, room)  # the recorder runs where the room is
        live = server.live.rooms.get(room)
        if live is None:
            if await server.room(room) is None:
                raise HttpError(404, "not-found", "no such room")
            raise HttpError(409, "not-live", "nobody is in the room: there is nothing to record")
        recording = await manager.start(live, by)
        return web.json_response({"recording": recording.describe()}, status=201)

    async def stop(request: web.Request) -> web.Response:
        room = request.match_info["room"]
        by = await host_actor(server, request, room)
        await to_owner(server, request, room)
        recording = await manager.stop(room, request.match_info["id"], by)
        return web.json_response({"recording": recording.describe()})

    async def listing(request: web.Request) -> web.Response:
        room = request.match_info["room"]
        await recordings_reader(server, request, room)
        return web.json_response({"recordings": manager.list(room)})

    async def manifest(request: web.Request) -> web.Response:
        room = request.match_info["room"]
        by = await recordings_reader(server, request, room)
        recording = manager.get(room, request.match_info["id"])
        await manager.opened(recording, by)
        return web.json_response(with_links(server.recording_links, room, recording.describe(), by.identity))

    async def delete(request: web.Request) -> web.Response:
        room = request.match_info["room"]
        by = await host_actor(server, request, room)
        await to_owner(server, request, room)  # which knows whether it is still being written
        await manager.delete(room, request.match_info["id"], by)
        return web.Response(status=204)

    def refusals(handler):
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except RecordingError as exc:
                raise HttpError(exc.status, exc.code, exc.message) from None
        return wrapped

    base = "/api/rooms/{room}/recordings"
    return [
        web.post(base, refusals(start)),
        web.get(base, refusals(listing)),
        web.get(base + "/{id}", refusals(manifest)),
        web.post(base + "/{id}/stop", refusals(stop)),
        web.delete(base + "/{id}", refusals(delete)),
    ]
