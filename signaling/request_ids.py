"""A request id on every HTTP request and WebSocket session, in its logs and its answer.

A proxy's X-Request-ID is kept when it looks like an id (so one id follows a request
through the proxy's logs and ours); otherwise one is made. It lives in a context
variable for the request's task, so a WebSocket's whole session, and the tasks it
starts, log under it (signaling/logs.py adds it to each line); the answer carries it
back in X-Request-ID.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from .logs import request_id

HEADER = "X-Request-ID"
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{8,64}")
_KEY = web.RequestKey("request_id", str)


@web.middleware
async def request_id_middleware(request: web.Request,
                                handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    given = request.headers.get(HEADER, "")
    rid = given if _ACCEPTED.fullmatch(given) else secrets.token_hex(8)
    request[_KEY] = rid
    token = request_id.set(rid)
    try:
        return await handler(request)
    finally:
        request_id.reset(token)


async def add_header(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """on_response_prepare: before the head goes out, also for WebSocket upgrades and files."""
    rid = request.get(_KEY) if isinstance(request, web.Request) else None
    if rid:
        response.headers[HEADER] = rid
