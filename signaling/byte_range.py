"""HTTP Range requests (RFC 9110 §14) over content of a known size: which bytes to send."""

from __future__ import annotations

from aiohttp import web


class RangeNotSatisfiable(Exception):
    """The range starts at or beyond the end: answer 416 with ``bytes */size``."""


def requested_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of a single satisfiable byte range, stop exclusive; None to send
    the whole content. A malformed or multi-part Range is ignored (RFC 9110 §14.2 lets a
    server do so), so a player that asks oddly still gets the file."""
    if "Range" not in request.headers:
        return None
    try:
        wanted = request.http_range
    except ValueError:
        return None
    start, stop = wanted.start, wanted.stop
    if start is None:
        return None
    if start < 0:  # suffix range: the last -start bytes
        if request.headers["Range"].strip().endswith("-0"):
            raise RangeNotSatisfiable  # "the last 0 bytes"
        start = max(0, size + start)
        stop = size
    if start >= size:
        raise RangeNotSatisfiable
    return start, size if stop is None else min(stop, size)
