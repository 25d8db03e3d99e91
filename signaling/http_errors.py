"""Every HTTP failure is a JSON `{"error", "code"}` body, never a traceback."""

from __future__ import annotations

import logging

from aiohttp import web

from rooms import RoomStoreUnavailable

log = logging.getLogger("telemed.http")


def json_error(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status, headers=headers)


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpError as exc:
        return json_error(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason.lower().replace(" ", "-"), exc.reason)
    except RoomStoreUnavailable as exc:
        log.error("%s %s: %s", request.method, request.path, exc)
        return json_error(503, "storage-unavailable", "the server cannot store this now; nothing was changed")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal", "internal server error")


async def read_json(request: web.Request, limit: int = 64 * 1024) -> dict:
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(413, "too-large", f"body exceeds {limit} bytes")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise HttpError(413, "too-large", f"body exceeds {limit} bytes")
    try:
        import json
        body = json.loads(raw or b"null")
    except ValueError:
        raise HttpError(400, "bad-json", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "bad-request", "body must be a JSON object")
    return body
