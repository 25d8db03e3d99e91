"""Every HTTP failure is a JSON `{"error", "code"}` body, never a traceback; request
bodies are read whole and bounded, so a bad or oversized one fails that way too."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from redis.exceptions import RedisError

from rooms import RoomStoreUnavailable

from clinical.storage import StorageUnavailable

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
    except StorageUnavailable as exc:  # e.g. the audit record an answer waits for
        log.error("storage unavailable on %s %s: %s", request.method, request.path, exc.message)
        return json_error(503, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason.lower().replace(" ", "-"), exc.reason)
    except RedisError as exc:  # the shared store of a cluster, restarting say
        log.error("%s %s: Redis: %r", request.method, request.path, exc)
        return json_error(503, "store-unavailable", "the shared store is unreachable; try again shortly",
                          {"Retry-After": "2"})
    except RoomStoreUnavailable as exc:
        log.error("%s %s: %s", request.method, request.path, exc)
        return json_error(503, "storage-unavailable", "the server cannot store this now; nothing was changed")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal", "internal server error")


@dataclass(frozen=True)
class BodyLimits:
    """Per-route caps: JSON stays small; SDP offers with many m-lines need more."""
    json: int
    sdp: int
    timeout: float  # seconds to receive the whole body


BODY_LIMITS = web.AppKey("body_limits", BodyLimits)
_CHUNK = 16 * 1024


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, however many TCP segments it came in; 413 beyond ``limit``
    bytes, 408 when it trickles in slower than the limits' timeout."""
    timeout = request.app[BODY_LIMITS].timeout
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(413, "too-large", f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HttpError(413, "too-large", f"body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise HttpError(408, "body-timeout", f"the body did not arrive within {timeout:g} s",
                        {"Connection": "close"}) from None
    except HttpProcessingError as exc:  # a broken chunked encoding, a short body
        raise HttpError(400, "bad-body", f"the body could not be read: {exc.message}") from None
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int | None = None) -> dict:
    if limit is None:
        limit = request.app[BODY_LIMITS].json
    raw = await read_body(request, limit)
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested beyond the stack
        raise HttpError(400, "bad-json", "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "bad-request", "body must be a JSON object")
    return body
