"""The aiohttp application: REST, WebSocket, WHIP/WHEP, metrics and the web client."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from . import api, clinical_api, credentials_api, whip, ws
from .config import Settings
from .http_errors import error_middleware
from .server import Server

WEB_ROOT = Path(__file__).resolve().parent.parent / "clients" / "web"
SERVER_KEY = web.AppKey("server", Server)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=1024 * 1024)
    server = Server(settings)
    sessions = whip.HttpSessions(server)
    app[SERVER_KEY] = server
    app.add_routes(api.routes(server))
    app.add_routes(credentials_api.routes(server))
    app.add_routes(clinical_api.routes(server))
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

    async def shutdown(app: web.Application) -> None:
        await sessions.close()
        await server.close()

    app.on_shutdown.append(shutdown)
    return app
