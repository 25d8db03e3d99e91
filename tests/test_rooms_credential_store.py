"""Every credential store (memory, SQLite, Redis) keeps invites, API keys and revocations alike, and
counts invite uses atomically."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import pytest

from rooms import ApiKey, Invite, InviteError, open_credential_store
from rooms.invites import INVITE_ROLES, InviteCodec
from tests.redis_server import redis_url  # noqa: F401  (fixture)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request, tmp_path):
    url = request.getfixturevalue("redis_url") if request.param == "redis" else request.param
    s = open_credential_store(url, tmp_path, prefix=f"test-{uuid.uuid4().hex}:")
    yield s
    await s.close()


async def test_the_sqlite_store_keeps_everything_across_a_restart(tmp_path):
    invite, (key, _) = make_invite(max_uses=3), ApiKey.new("Portal")
    first = open_credential_store("sqlite", tmp_path)
    await first.add_invite(invite)
    await first.redeem_invite("consult-1", invite.id, time.time())
    await first.add_api_key(key)
    await first.revoke_token("jti-1", time.time() + 60)
    await first.close()
    second = open_credential_store("sqlite", tmp_path)
    try:
        assert [i.uses for i in await second.list_invites("consult-1", "inc-1")] == [1]
        assert await second.get_api_key(key.key_id) == key
        assert await second.is_token_revoked("jti-1")
    finally:
        await second.close()


def make_invite(room: str = "consult-1", **kwargs) -> Invite:
    return Invite.new(room, "inc-1", kwargs.pop("role", "participant"), **kwargs)


async def refusal(store, room: str, invite_id: str) -> str:
    with pytest.raises(InviteError) as info:
        await store.redeem_invite(room, invite_id, time.time())
    return info.value.code


async def test_an_invite_round_trips_and_counts_its_uses(store):
    invite = make_invite(max_uses=2, label="Ward 3")
    await store.add_invite(invite)
    assert await store.list_invites("consult-1", "inc-1") == [invite]
    assert await store.list_invites("consult-1", "inc-2") == []  # another incarnation's room
    assert (await store.redeem_invite("consult-1", invite.id, time.time())).uses == 0
    assert (await store.redeem_invite("consult-1", invite.id, time.time())).uses == 1
    assert await refusal(store, "consult-1", invite.id) == "invite-used-up"
    assert (await store.list_invites("consult-1", "inc-1"))[0].uses == 2


async def test_concurrent_redemptions_never_exceed_the_count(store):
    invite = make_invite(max_uses=5)
    await store.add_invite(invite)
    results = await asyncio.gather(*(store.redeem_invite("consult-1", invite.id, time.time())
                                     for _ in range(20)), return_exceptions=True)
    assert sum(isinstance(r, Invite) for r in results) == 5
    assert {r.code for r in results if isinstance(r, InviteError)} == {"invite-used-up"}


async def test_revoked_expired_unknown_and_deleted_invites_are_refused(store):
    invite = make_invite()
    await store.add_invite(invite)
    assert await store.revoke_invite("consult-1", invite.id)
    assert not await store.revoke_invite("consult-1", "nosuch")
    assert not await store.revoke_invite("other-room", invite.id)
    assert await refusal(store, "consult-1", invite.id) == "invite-revoked"
    assert (await store.list_invites("consult-1", "inc-1"))[0].revoked
    expired = make_invite(expires_in=60)
    await store.add_invite(expired)
    with pytest.raises(InviteError) as info:
        await store.redeem_invite("consult-1", expired.id, expired.expires_at)
    assert info.value.code == "invite-expired"
    assert await refusal(store, "consult-1", "nosuch") == "invite-revoked"  # signed, but gone
    await store.delete_invites("consult-1")
    assert await store.list_invites("consult-1", "inc-1") == []
    assert await refusal(store, "consult-1", expired.id) == "invite-revoked"


async def test_api_keys_are_kept_hashed_and_revocable(store):
    key, secret = ApiKey.new("City portal")
    await store.add_api_key(key)
    loaded = await store.get_api_key(key.key_id)
    assert loaded == key and loaded.matches(secret) and not loaded.matches(secret + "x")
    assert await store.get_api_key("tmk_0000000000000000") is None
    assert [k.key_id for k in await store.list_api_keys()] == [key.key_id]
    assert await store.revoke_api_key(key.key_id)
    assert not await store.revoke_api_key("tmk_0000000000000000")
    revoked = await store.get_api_key(key.key_id)
    assert revoked.revoked and not revoked.matches(secret)


async def test_a_revoked_token_stays_revoked_until_it_would_have_died(store):
    assert not await store.is_token_revoked("jti-1")
    await store.revoke_token("jti-1", until=time.time() + 60)
    await store.revoke_token("jti-1", until=time.time() + 1)  # never shortens
    assert await store.is_token_revoked("jti-1")
    assert not await store.is_token_revoked("jti-2")
    await store.revoke_token("jti-3", until=time.time() - 1)  # already dead anyway
    assert not await store.is_token_revoked("jti-3")


def test_invite_requests_are_checked():
    for kwargs in [{"role": "host"}, {"role": "viewer", "expires_in": 59}, {"role": "viewer", "max_uses": -1},
                   {"role": "viewer", "label": "\x1b[31m"}]:
        with pytest.raises(ValueError):
            make_invite(**kwargs)
    assert set(INVITE_ROLES) == {"participant", "viewer", "device"}


def test_invite_codes_are_bound_to_their_room_and_key():
    codec = InviteCodec("k" * 48)
    invite = make_invite()
    assert codec.decode(codec.encode(invite), "consult-1") == (invite.id, invite.role)
    with pytest.raises(InviteError) as info:
        codec.decode(codec.encode(invite), "consult-2")
    assert info.value.code == "invite-wrong-room"
    with pytest.raises(InviteError) as info:
        InviteCodec("x" * 48).decode(codec.encode(invite), "consult-1")
    assert info.value.code == "invite-invalid"
    with pytest.raises(InviteError) as info:
        codec.decode(codec.encode(dataclasses.replace(invite, expires_at=time.time() - 60)), "consult-1")
    assert info.value.code == "invite-expired"
