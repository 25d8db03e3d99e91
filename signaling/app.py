"""The aiohttp application: REST, WebSocket, WHIP/WHEP, metrics and the web client."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from . import (api, clinical_api, credentials_api, live_api, metrics_endpoint, openapi, recording_media,
               recordings_api, reports_api, whip, ws)
from .config import Settings, reveal
from .forwarded import forwarded_middleware
from .http_errors import BODY_LIMITS, BodyLimits, error_middleware
from .origins import OriginPolicy
from .request_ids import add_header, request_id_middleware
from .security_headers import security_headers
from .server import Server

WEB_ROOT = Path(__file__).resolve().parent.parent / "clients" / "web"
SERVER_KEY = web.AppKey("server", Server)


def create_app(settings: Settings) -> web.Application:
    # keepalive_timeout also bounds the wait for a first, complete request head: aiohttp
    # arms it on connect and closes the connection if no request arrived by then.
    server = Server(settings)
    app = web.Application(middlewares=[request_id_middleware, forwarded_middleware(settings.trusted_proxies),
                                       security_headers(server.node.urls, server.node.refresh_urls),
                                       whip.cors_middleware(OriginPolicy(settings.whip_origins)),
                                       error_middleware],
                          client_max_size=1024 * 1024,
                          handler_args={"keepalive_timeout": settings.header_timeout})
    app.on_response_prepare.append(add_header)
    sessions = whip.HttpSessions(server)
    app[SERVER_KEY] = server
    app[BODY_LIMITS] = BodyLimits(settings.max_json_body, settings.max_sdp_body, settings.body_timeout)
    app.add_routes(metrics_endpoint.routes(server.metrics, reveal(settings.metrics_key)))
    if settings.metrics_listen:
        metrics_endpoint.separate_listener(app, server.metrics, settings.metrics_listen)
    app.add_routes(api.routes(server))
    app.add_routes(openapi.routes())
    app.add_routes(credentials_api.routes(server))
    app.add_routes(clinical_api.routes(server))
    app.add_routes(live_api.routes(server))
    app.add_routes(recordings_api.routes(server))
    app.add_routes(recording_media.routes(server))
    app.add_routes(reports_api.routes(server))
    app.add_routes([ws.route(server, app)])
    app.add_routes(whip.routes(sessions))

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_ROOT / "index.html")

    async def viewer(request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_ROOT / "room.html")  # the trainee page is the room page, receive-only

    if (WEB_ROOT / "index.html").exists():
        app.router.add_get("/", index)
        app.router.add_get("/viewer.html", viewer)
        app.router.add_static("/", WEB_ROOT, show_index=False, follow_symlinks=False)

    async def upkeep(app: web.Application):
        await server.open_media_port()
        expiry = asyncio.ensure_future(server.recordings.run_expiry())
        archiving = asyncio.ensure_future(server.recordings.run_archive())
        yield
        expiry.cancel()
        archiving.cancel()
        server.close_media_port()

    app.cleanup_ctx.append(upkeep)

    async def join_cluster(app: web.Application) -> None:
        await server.node.start()  # before serving: shared keys loaded, node registered

    app.on_startup.append(join_cluster)

    async def shutdown(app: web.Application) -> None:
        await sessions.close()
        await server.close()

    app.on_shutdown.append(shutdown)
    return app
