"""Waiting in a test for what the system under test does next: polled, bounded in time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def until(condition: Callable[[], T], timeout: float = 30.0, what: str = "condition",
                every: float = 0.05) -> T:
    """The first truthy value of `condition()`, asked every `every` seconds; AssertionError
    naming `what` if none comes within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)
