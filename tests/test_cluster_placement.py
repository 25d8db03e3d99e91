"""Node heartbeats, room leases, shared token keys and shared login limits, each against
a real Redis (the session's; every test keeps to its own key prefix)."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

import pytest

from cluster import NodeInfo, NodeRegistry, RoomLeases
from rooms import LoginLimiter, LoginLimits, RedisSigningKeys, SharedLoginLimiter, Throttled, TokenError, TokenIssuer
from rooms.redis_client import connect


@pytest.fixture
async def redis(redis_url):
    client = connect(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(4)}:"


async def test_rooms_go_to_the_least_loaded_node_and_the_busy_one_is_passed_over(redis, prefix):
    leases = RoomLeases(redis, prefix, "a", ttl=30)
    nodes = [NodeInfo("a", "http://a", peers=20), NodeInfo("b", "http://b"), NodeInfo("c", "http://c"),
             NodeInfo("busy", "http://busy", cpu=0.95)]
    placed = Counter([await leases.place(f"room-{i}", nodes) for i in range(20)])
    # a starts 5 rooms' worth loaded (20 peers); b and c fill up to it, then all take turns.
    assert placed == {"a": 4, "b": 8, "c": 8}
    # Placing again answers the owner it has.
    assert await leases.place("room-0", list(reversed(nodes))) == await leases.owner("room-0")
    # Only busy nodes left: one of them still gets the room rather than nobody.
    assert await leases.place("overflow", [nodes[3]]) == "busy"


async def test_a_lease_lapses_with_its_owners_heartbeat_and_moves(redis, prefix):
    registry = NodeRegistry(redis, prefix, ttl=0.3)
    dying = RoomLeases(redis, prefix, "dying", ttl=30)
    await registry.beat(NodeInfo("dying", "http://dying"))
    assert await dying.place("icu", [NodeInfo("dying", "http://dying")]) == "dying"
    alive = NodeInfo("alive", "http://alive")
    assert await dying.place("icu", [alive]) == "dying"  # its heartbeat lives: it keeps the room
    deadline = asyncio.get_running_loop().time() + 5
    while await registry.get("dying") is not None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert await registry.nodes() == []
    assert await dying.place("icu", [alive]) == "alive"
    # The old owner renewing now learns it lost the room; it never takes it back.
    assert await dying.renew(["icu"]) == ["icu"]
    assert await dying.owner("icu") == "alive"


async def test_renewal_reasserts_leases_that_redis_lost(redis, prefix):
    leases = RoomLeases(redis, prefix, "n1", ttl=30)
    await leases.place("ward", [NodeInfo("n1", "http://n1")])
    await redis.delete(f"{prefix}lease:ward")  # as after a restart without persistence
    assert await leases.renew(["ward"]) == []
    assert await leases.owner("ward") == "n1"
    await leases.release("ward")
    assert await leases.owner("ward") is None


async def test_token_keys_rotate_and_old_tokens_hold_until_their_key_retires(redis, prefix):
    keys = RedisSigningKeys(redis, prefix, rotate_every=0, activation=0)
    other_node = RedisSigningKeys(redis, prefix, rotate_every=0, activation=0)
    issuer = TokenIssuer(await keys.load())
    verifier = TokenIssuer(await other_node.load())
    first = issuer.issue("ward", "participant", "u1", "U", credential="admin", incarnation="i1")
    assert verifier.verify(first).identity == "u1"
    assert await keys.rotate_if_due()
    issuer.use_keys(await keys.load())
    verifier.use_keys(await other_node.load())
    second = issuer.issue("ward", "participant", "u2", "U", credential="admin", incarnation="i1")
    assert verifier.verify(first).identity == "u1" and verifier.verify(second).identity == "u2"
    for _ in range(2):  # the first key falls out of the newest three
        await keys.rotate_if_due()
    verifier.use_keys(await other_node.load())
    with pytest.raises(TokenError, match="retired"):
        verifier.verify(first)
    assert verifier.verify(second).identity == "u2"


async def test_a_new_key_signs_only_once_every_node_can_know_it(redis, prefix):
    keys = RedisSigningKeys(redis, prefix, rotate_every=0, activation=3600)
    first = await keys.load()  # the very first key signs at once: there is no other
    assert await keys.rotate_if_due()
    later = await keys.load()
    assert later.current == first.current and len(later.secrets) == 2


async def test_keys_redis_lost_are_put_back(redis, prefix):
    keys = RedisSigningKeys(redis, prefix, rotate_every=3600, activation=0)
    before = await keys.load()
    await redis.delete(f"{prefix}token-keys")
    assert await keys.load() == before


async def test_shared_login_limits_count_across_limiters(redis, prefix):
    limits = LoginLimits(per_address_room=3)
    node1 = SharedLoginLimiter(redis, LoginLimiter(limits), prefix)
    node2 = SharedLoginLimiter(redis, LoginLimiter(limits), prefix)
    for limiter in (node1, node2, node1):
        with await limiter.reserve("10.0.0.1", "ward"):
            pass  # a wrong password: the failure stays counted
    with pytest.raises(Throttled):
        await node2.reserve("10.0.0.1", "ward")
    with await node2.reserve("10.0.0.2", "ward") as attempt:  # other addresses are not locked
        attempt.succeeded()


async def test_a_right_password_takes_its_shared_failure_back(redis, prefix):
    limits = LoginLimits(per_address_room=2)
    node1 = SharedLoginLimiter(redis, LoginLimiter(limits), prefix)
    node2 = SharedLoginLimiter(redis, LoginLimiter(limits), prefix)
    for _ in range(3):
        with await node1.reserve("10.0.0.1", "ward") as attempt:
            attempt.succeeded()
        await asyncio.gather(*node1._pending)  # the take-back runs in the background
    with await node2.reserve("10.0.0.1", "ward"):
        pass


async def test_without_redis_the_nodes_own_limits_still_apply():
    unreachable = connect("redis://127.0.0.1:1/0")
    limiter = SharedLoginLimiter(unreachable, LoginLimiter(LoginLimits(per_address_room=1)), "x:")
    try:
        with await limiter.reserve("10.0.0.1", "ward"):
            pass
        with pytest.raises(Throttled):
            await limiter.reserve("10.0.0.1", "ward")
    finally:
        await unreachable.aclose()
