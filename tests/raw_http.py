"""HTTP/1.1 over a plain asyncio stream, for what aiohttp's client will not do: a body
sent in several TCP segments with pauses between, a head never finished."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


async def open_stream(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    # Each write leaves as its own segment instead of waiting to be coalesced.
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def read_response(reader: asyncio.StreamReader, timeout: float = 20.0) -> RawResponse:
    async with asyncio.timeout(timeout):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
    return RawResponse(status, headers, body)


async def request_in_segments(url: str, method: str, path: str, headers: dict[str, str],
                              segments: list[bytes], pause: float = 0.2,
                              content_length: int | None = None) -> RawResponse:
    """Send the head, then each segment of the body separately with a pause between:
    the server sees the body arrive in pieces, as it does over a real network."""
    reader, writer = await open_stream(url)
    try:
        length = sum(map(len, segments)) if content_length is None else content_length
        head = [f"{method} {path} HTTP/1.1", f"Host: {urlsplit(url).netloc}",
                f"Content-Length: {length}", "Connection: close"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        for n, segment in enumerate(segments):
            if n:
                await asyncio.sleep(pause)  # not a wait for a result: it splits the body in time
            writer.write(segment)
            await writer.drain()
        return await read_response(reader)
    finally:
        writer.close()


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float = 20.0) -> bytes:
    """Everything the server sends until it closes the connection (EOF or reset)."""
    received = b""
    async with asyncio.timeout(timeout):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
