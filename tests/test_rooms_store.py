import asyncio
import dataclasses
import sqlite3
import uuid

import pytest

from rooms import (
    Layout,
    MemoryRoomStore,
    RedisRoomStore,
    Room,
    RoomExists,
    RoomNotFound,
    RoomSettings,
    SqliteRoomStore,
    hash_password,
    open_room_store,
    validate_room_name,
)
from tests.redis_server import redis_url  # noqa: F401  (fixture)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store_url(request) -> str:
    return request.getfixturevalue("redis_url") if request.param == "redis" else request.param


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"  # each test gets its own keyspace on the shared server


@pytest.fixture
async def store(store_url, prefix, tmp_path):
    s = open_room_store(store_url, tmp_path, prefix=prefix)
    yield s
    await s.close()


def make_room(name="consult-1", password_hash="scrypt$hash", **kwargs) -> Room:
    return Room(name=name, password_hash=password_hash, created_at=1_700_000_000.25, **kwargs)


# --- behaviour every store must have -------------------------------------------------------


async def test_create_then_get_round_trips_everything(store):
    room = make_room(
        settings=RoomSettings(require_deidentification=True, max_participants=500),
        layout=Layout("surgery", "field", ["endo", "overview"], version=3),
    )
    await store.create(room)
    assert await store.get("consult-1") == room


async def test_get_missing_is_none(store):
    assert await store.get("nobody") is None


async def test_duplicate_create_is_refused_and_keeps_the_original(store):
    await store.create(make_room(password_hash="first"))
    with pytest.raises(RoomExists) as info:
        await store.create(make_room(password_hash="second"))
    assert info.value.name == "consult-1"
    assert (await store.get("consult-1")).password_hash == "first"


async def test_concurrent_creates_have_exactly_one_winner(store):
    results = await asyncio.gather(
        *(store.create(make_room(password_hash=f"h{i}")) for i in range(20)), return_exceptions=True
    )
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert all(isinstance(r, RoomExists) for r in results if r is not None)
    assert (await store.get("consult-1")).password_hash == f"h{winners[0]}"


async def test_delete(store):
    await store.create(make_room())
    assert await store.delete("consult-1") is True
    assert await store.get("consult-1") is None
    assert await store.delete("consult-1") is False
    assert await store.list() == []
    await store.create(make_room())  # the name is free again


async def test_list_is_sorted_by_name(store):
    for name in ["b", "a", "C", "c-2"]:
        await store.create(make_room(name))
    assert [r.name for r in await store.list()] == ["C", "a", "b", "c-2"]


async def test_set_layout_bumps_version_and_ignores_callers_version(store):
    await store.create(make_room())
    await store.create(make_room("other"))
    first = await store.set_layout("consult-1", Layout("speaker", "cam-1", version=99))
    assert first == Layout("speaker", "cam-1", version=1)
    second = await store.set_layout("consult-1", Layout("surgery", None, ["endo"]))
    assert second.version == 2
    room = await store.get("consult-1")
    assert room.layout == second
    assert room.password_hash == "scrypt$hash"  # the rest of the room is untouched
    assert (await store.get("other")).layout == Layout()


async def test_concurrent_layout_changes_get_distinct_versions(store):
    await store.create(make_room())
    layouts = await asyncio.gather(
        *(store.set_layout("consult-1", Layout("grid", f"t{i}")) for i in range(20))
    )
    assert sorted(lay.version for lay in layouts) == list(range(1, 21))
    assert (await store.get("consult-1")).layout.version == 20


async def test_set_layout_on_missing_room(store):
    with pytest.raises(RoomNotFound):
        await store.set_layout("nobody", Layout())
    assert await store.get("nobody") is None  # and it did not half-create one


# --- Redis specifics -----------------------------------------------------------------------


async def test_nodes_sharing_redis_share_rooms(redis_url, prefix):  # noqa: F811
    node_a = RedisRoomStore(redis_url, prefix=prefix)
    node_b = RedisRoomStore(redis_url, prefix=prefix)
    elsewhere = RedisRoomStore(redis_url, prefix=prefix + "other:")
    try:
        await node_a.create(make_room())
        with pytest.raises(RoomExists):
            await node_b.create(make_room())
        layout = await node_b.set_layout("consult-1", Layout("presentation", "screen"))
        assert (await node_a.get("consult-1")).layout == layout
        assert await elsewhere.list() == []
        assert await node_b.delete("consult-1")
        assert await node_a.get("consult-1") is None
    finally:
        for s in (node_a, node_b, elsewhere):
            await s.close()


def test_redis_store_repr_hides_url():
    assert "hunter2" not in repr(RedisRoomStore("redis://:hunter2@127.0.0.1:1/0"))


# --- SQLite specifics ----------------------------------------------------------------------


async def test_sqlite_keeps_rooms_when_reopened(tmp_path):
    first = open_room_store("sqlite", tmp_path)
    room = make_room(settings=RoomSettings(max_participants=7))
    await first.create(room)
    layout = await first.set_layout("consult-1", Layout("speaker", "cam"))
    await first.close()
    second = open_room_store("sqlite", tmp_path)
    try:
        assert await second.get("consult-1") == dataclasses.replace(room, layout=layout)
        assert (await second.set_layout("consult-1", Layout())).version == 2  # numbering goes on
    finally:
        await second.close()


async def test_two_processes_worth_of_sqlite_stores_share_one_file(tmp_path):
    node_a = SqliteRoomStore(tmp_path / "rooms.sqlite3")
    node_b = SqliteRoomStore(tmp_path / "rooms.sqlite3")
    try:
        results = await asyncio.gather(
            *(s.create(make_room(password_hash=f"h{i}")) for i, s in enumerate([node_a, node_b] * 5)),
            return_exceptions=True)
        assert sum(r is None for r in results) == 1
        layouts = await asyncio.gather(*(s.set_layout("consult-1", Layout()) for s in [node_a, node_b] * 5))
        assert sorted(lay.version for lay in layouts) == list(range(1, 11))
    finally:
        await node_a.close()
        await node_b.close()


async def test_sqlite_file_is_in_wal_mode(tmp_path):
    store = open_room_store("sqlite", tmp_path)
    await store.create(make_room())
    await store.close()
    with sqlite3.connect(tmp_path / "rooms.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_store_refuses_an_unusable_path(tmp_path):
    (tmp_path / "rooms.sqlite3").write_bytes(b"not a database, just some bytes" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        SqliteRoomStore(tmp_path / "rooms.sqlite3")


# --- the factory ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", [None, "", "memory", "memory://"])
def test_factory_memory(url):
    assert isinstance(open_room_store(url), MemoryRoomStore)


async def test_factory_sqlite(tmp_path):
    default = open_room_store("sqlite", tmp_path / "data")
    explicit = open_room_store(f"sqlite://{tmp_path}/elsewhere.db")
    try:
        assert default.path == tmp_path / "data" / "rooms.sqlite3" and default.path.exists()
        assert explicit.path == tmp_path / "elsewhere.db"
    finally:
        await default.close()
        await explicit.close()
    with pytest.raises(ValueError, match="data directory"):
        open_room_store("sqlite")


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "rediss://h:6380", "unix:///tmp/r.sock"])
def test_factory_redis(url):
    assert isinstance(open_room_store(url), RedisRoomStore)


@pytest.mark.parametrize("url", ["postgres://user:hunter2@db/x", "hunter2", "mem"])
def test_factory_rejects_unknown_urls_without_echoing_them(url):
    with pytest.raises(ValueError, match="unsupported room store") as info:
        open_room_store(url)
    assert "hunter2" not in str(info.value)


# --- the Room model ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "Consult_2024-01", "x" * 64, "0"])
def test_good_room_names(name):
    assert validate_room_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 65, "has space", "dot.name", "slash/x", "../etc", "name\n", "caf\u00e9", "ｆｕｌｌ", None, 5]
)
def test_bad_room_names(name):
    with pytest.raises(ValueError, match="room name"):
        validate_room_name(name)


def test_public_dict_never_has_the_hash():
    stored = hash_password("pw")
    room = Room(name="r1", password_hash=stored, created_at=1.5)
    public = room.to_public_dict()
    assert "password_hash" not in public and stored not in str(public)
    assert stored not in repr(room)
    assert public == {
        "name": "r1",
        "created_at": 1.5,
        "settings": {"require_deidentification": False, "max_participants": 100, "record": "manual",
                     "waiting_room": False},
        "layout": Layout().to_dict(),
    }
    assert Room.from_record(room.to_record()) == room


@pytest.mark.parametrize(
    "kwargs",
    [{"name": "bad name"}, {"password_hash": ""}, {"password_hash": None}],
)
def test_bad_rooms(kwargs):
    with pytest.raises(ValueError):
        Room(**{"name": "r1", "password_hash": "h", "created_at": 0.0, **kwargs})


@pytest.mark.parametrize(
    "d",
    [
        {"max_participants": 0},
        {"max_participants": 10_001},
        {"max_participants": "10"},
        {"max_participants": True},
        {"record": "always"},
        {"require_deidentification": "yes"},
        {"waiting_room": 1},
        {"colour": "red"},
        [],
    ],
)
def test_bad_settings(d):
    with pytest.raises(ValueError):
        RoomSettings.from_dict(d)


async def test_role_passwords_and_incarnation_round_trip(store):
    room = make_room(role_password_hashes={"viewer": "scrypt$v", "device": "scrypt$d"}, incarnation="inc-7")
    await store.create(room)
    loaded = await store.get("consult-1")
    assert (loaded.role_password_hashes, loaded.incarnation) == ({"viewer": "scrypt$v", "device": "scrypt$d"}, "inc-7")
    assert make_room().incarnation != make_room().incarnation  # each new room is a new incarnation
    with pytest.raises(ValueError):
        make_room(role_password_hashes={"host": "scrypt$h"})
