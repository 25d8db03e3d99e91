"""Password guessing with real concurrent requests against the real server: refused before
scrypt runs, the attacker locked out, many addresses lock the room, the people already in it
still get in, and a room that does not exist costs the same check as one that does."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from rooms import scrypt_runs

PASSWORD = "pw-123456"
GUESSES = 300


class From:
    """HTTP from one loopback source address (127.0.0.0/8 is all ours on Linux)."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        # limit=0: every request gets its own connection at once, none waits for a free one
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(ip, 0), limit=0))

    async def token(self, url: str, room: str, password: str) -> tuple[int, dict, dict]:
        async with self._http.post(f"{url}/api/rooms/{room}/token",
                                   json={"password": password, "role": "participant", "name": "X"}) as r:
            return r.status, await r.json(), dict(r.headers)

    async def close(self) -> None:
        await self._http.close()


@pytest.fixture
async def addresses():
    opened: list[From] = []

    def open_from(ip: str) -> From:
        opened.append(From(ip))
        return opened[-1]

    yield open_from
    await asyncio.gather(*(c.close() for c in opened))


async def test_300_guesses_at_once_from_one_address(server, addresses):
    await server.create_room("ward", PASSWORD)
    attacker, doctor = addresses("127.0.0.2"), addresses("127.0.0.1")
    limits = server.core.login_limiter.limits
    before = scrypt_runs()
    answers = await asyncio.gather(*(attacker.token(server.url, "ward", f"guess-{i}") for i in range(GUESSES)))
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {401, 429}
    # Each check was counted before it ran, so no more ran than the address may fail.
    assert 0 < statuses.count(401) == scrypt_runs() - before <= limits.per_address_room
    assert statuses.count(429) >= GUESSES - limits.per_address_room
    assert all(int(headers["Retry-After"]) >= 1 for status, _, headers in answers if status == 429)
    # The attacker is locked out, even with the right password...
    status, body, _ = await attacker.token(server.url, "ward", PASSWORD)
    assert status == 429 and body["code"] == "rate-limited"
    # ...and nobody else is.
    assert (await doctor.token(server.url, "ward", PASSWORD))[0] == 200


async def test_colleagues_behind_one_address_logging_in_at_once_are_not_locked_out(server, addresses):
    await server.create_room("ward", PASSWORD)
    nat = addresses("127.0.0.2")
    statuses = [status for status, _, _ in await asyncio.gather(
        *(nat.token(server.url, "ward", PASSWORD) for _ in range(20)))]
    assert set(statuses) <= {200, 429} and 200 in statuses  # the excess is told to retry
    for _ in range(statuses.count(429)):  # and each retry gets in
        assert (await nat.token(server.url, "ward", PASSWORD))[0] == 200


async def test_guesses_from_20_addresses_hit_the_per_room_cap(server, addresses):
    await server.create_room("ward", PASSWORD)
    doctor, newcomer = addresses("127.0.0.1"), addresses("127.0.0.22")
    assert (await doctor.token(server.url, "ward", PASSWORD))[0] == 200  # in the consult already
    guessers = [addresses(f"127.0.0.{i}") for i in range(2, 22)]
    limits = server.core.login_limiter.limits
    before = scrypt_runs()
    answers = await asyncio.gather(*(
        guesser.token(server.url, "ward", f"guess-{i}")
        for i in range(GUESSES // len(guessers)) for guesser in guessers))
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {401, 429} and len(statuses) == GUESSES
    assert statuses.count(401) == scrypt_runs() - before <= limits.per_room
    # The room's password login is locked for addresses that were not in it lately...
    status, body, headers = await newcomer.token(server.url, "ward", PASSWORD)
    assert status == 429 and "invitation" in body["error"] and int(headers["Retry-After"]) > 60
    # ...but the doctor who was gets back in, and other rooms are untouched.
    assert (await doctor.token(server.url, "ward", PASSWORD))[0] == 200
    await server.create_room("theatre", PASSWORD)
    assert (await newcomer.token(server.url, "theatre", PASSWORD))[0] == 200


async def test_a_missing_room_costs_the_same_check_as_an_existing_one(server, addresses):
    await server.create_room("ward", PASSWORD)
    answers, runs = {}, {}
    for room, ip in (("ward", "127.0.0.2"), ("no-such-ward", "127.0.0.3")):
        before = scrypt_runs()
        answers[room] = (await addresses(ip).token(server.url, room, "wrong-password"))[:2]
        runs[room] = scrypt_runs() - before
    assert runs == {"ward": 1, "no-such-ward": 1}
    assert answers["ward"] == answers["no-such-ward"] == (
        401, {"error": "wrong room or password", "code": "unauthorized"})


async def test_failures_and_refusals_show_in_metrics(server, addresses):
    await server.create_room("ward", PASSWORD)
    guesser = addresses("127.0.0.2")
    for i in range(6):
        await guesser.token(server.url, "ward", f"guess-{i}")
    text = server.core.metrics.render()  # over HTTP /metrics needs a key (tests/test_edge_metrics.py)
    assert "telemed_login_failures_total 5" in text and "telemed_login_throttled_total 1" in text
    assert "telemed_scrypt_runs_total" in text


@pytest.mark.parametrize(("password", "message"), [
    ("short", "at least 8 characters"),
    ("2024061", "at least 8 characters"),
    ("2024060112", "only digits"),
    ("Ward-Seven", "not be the room name"),
    ("xxxxxxxxxx", "different characters"),
    (12345678, "must be a string"),
])
async def test_weak_passwords_are_refused_at_creation(server, password, message):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/api/rooms", json={"name": "ward-seven", "password": password},
                             headers={"Authorization": f"Bearer {server.admin_key}"}) as r:
            assert r.status == 400
            body = await r.json()
    assert body["code"] == "bad-request" and message in body["error"]
    assert await server.core.store.get("ward-seven") is None
    await server.create_room("ward-seven", PASSWORD)  # the usual test password is strong enough
