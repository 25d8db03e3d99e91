"""`GET /api/openapi.json`: the OpenAPI 3.1 document of the HTTP endpoints
(openapi.json beside this file; tests/test_openapi.py holds it to the routes)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

DOCUMENT = Path(__file__).resolve().parent / "openapi.json"


def routes() -> list[web.RouteDef]:
    body = DOCUMENT.read_bytes()

    async def document(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return [web.get("/api/openapi.json", document)]
