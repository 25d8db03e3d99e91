"""The scrypt pool: bounded, served by priority, refusing at once when its queue is full."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rooms import HasherBusy, PasswordHasher, hash_password

DEADLINE = 30.0


class Gate:
    """A job that holds a pool thread until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        self.entered.set()
        assert self.release.wait(DEADLINE)
        return "gate"


async def wait_for(predicate) -> None:
    async with asyncio.timeout(DEADLINE):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def pool():
    hasher = PasswordHasher(workers=1, max_waiting=3)
    yield hasher
    hasher.close()


async def test_round_trip_and_missing_room(pool):
    stored = await pool.hash("pw-123456")
    assert await pool.verify("pw-123456", stored)
    assert not await pool.verify("pw-123457", stored)
    assert not await pool.verify("pw-123456", None)


async def test_waiters_are_served_by_priority_then_arrival(pool):
    gate, order = Gate(), []
    blocker = asyncio.ensure_future(pool.run(gate, priority=0))
    await asyncio.to_thread(gate.entered.wait, DEADLINE)

    async def job(name: str, priority: int) -> None:
        await pool.run(order.append, name, priority=priority)

    jobs = [asyncio.ensure_future(job("guess-1", 1)), asyncio.ensure_future(job("guess-2", 1))]
    await wait_for(lambda: pool.waiting == 2)
    jobs.append(asyncio.ensure_future(job("person", 0)))
    await wait_for(lambda: pool.waiting == 3)
    with pytest.raises(HasherBusy):  # the queue is full: refused at once, not queued
        await pool.run(order.append, "one too many", priority=0)
    gate.release.set()
    await asyncio.gather(blocker, *jobs)
    assert order == ["person", "guess-1", "guess-2"]


async def test_one_thread_is_kept_for_people_who_logged_in_lately():
    pool = PasswordHasher(workers=2, max_waiting=8)
    gate, order = Gate(), []
    try:
        guess = asyncio.ensure_future(pool.run(gate, priority=1))
        await asyncio.to_thread(gate.entered.wait, DEADLINE)
        # A thread is free, but it is kept: a second guess waits...
        second = asyncio.ensure_future(pool.run(order.append, "guess", priority=2))
        await wait_for(lambda: pool.waiting == 1)
        # ...while a person who logged in lately starts at once.
        await pool.run(order.append, "member", priority=0)
        assert order == ["member"] and pool.waiting == 1
        gate.release.set()
        await asyncio.gather(guess, second)
        assert order == ["member", "guess"]
    finally:
        gate.release.set()
        pool.close()


async def test_a_cancelled_waiter_gives_its_turn_away(pool):
    gate, order = Gate(), []
    blocker = asyncio.ensure_future(pool.run(gate, priority=0))
    await asyncio.to_thread(gate.entered.wait, DEADLINE)
    gone = asyncio.ensure_future(pool.run(order.append, "gone", priority=0))
    kept = asyncio.ensure_future(pool.run(order.append, "kept", priority=1))
    await wait_for(lambda: pool.waiting == 2)
    gone.cancel()
    gate.release.set()
    await asyncio.gather(blocker, kept)
    assert order == ["kept"]
    assert await pool.verify("x", hash_password("x"))  # and the pool still works
