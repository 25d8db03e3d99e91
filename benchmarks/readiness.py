"""Waiting for a server under test to come up."""

from __future__ import annotations

import asyncio

import aiohttp


async def answers_ok(http: aiohttp.ClientSession, url: str, timeout: float) -> bool:
    """Poll `url` until it answers 200; False if it has not within `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() <= deadline:
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status == 200:
                    return True
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.2)
    return False
