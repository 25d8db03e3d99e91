"""Requests about a live room go to the node hosting it: a 307 to the same path and query
on that node's public URL (RFC 9725 §4.5 lets WHIP/WHEP endpoints do this; HLS players and
HTTP clients follow it). docs/multinode.md lists which path does what."""

from __future__ import annotations

from aiohttp import web

from .cluster_node import Elsewhere
from .server import Server


def redirect(request: web.Request, elsewhere: Elsewhere) -> web.HTTPTemporaryRedirect:
    return web.HTTPTemporaryRedirect(elsewhere.url + request.path_qs)


async def to_owner(server: Server, request: web.Request, room: str) -> None:
    """Raise the redirect if another live node hosts ``room``; return if it is here or nowhere."""
    if room in server.live.rooms:  # no Redis round trip for each HLS part a host serves
        return
    url = await server.node.owner_url(room)
    if url is not None:
        raise web.HTTPTemporaryRedirect(url + request.path_qs)
