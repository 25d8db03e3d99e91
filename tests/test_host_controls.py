"""Host controls over the real server, with the Python client and real aiortc peers:
the waiting room, lock, remove, mute a participant, end for everyone; each refused
to non-hosts and each followed by room listeners."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from clinical.audit import verify
from telemed_client import Client, ClientError
from tests.media import PatternTrack, ToneTrack

PASSWORD = "host-controls-pass"


async def until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def audit_records(server, action: str) -> list[dict]:
    path = Path(server.core.settings.data_dir) / "audit.jsonl"
    verify(path, server.core.audit.key)  # the keyed chain holds
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["action"] == action]


class Room:
    """A room and the clients joined to it, all closed at the end."""

    def __init__(self, server, name: str) -> None:
        self.server, self.name = server, name
        self.clients: list[Client] = []
        self.events: list[dict] = []

    async def token(self, role: str, name: str, identity: str | None = None) -> str:
        if identity is not None:  # only an admin or API key may name the identity
            return await self.server.mint(self.name, role, name, identity)
        return await self.server.token(self.name, PASSWORD, role=role, name=name)

    async def join(self, role: str = "participant", name: str = "X", identity: str | None = None,
                   token: str | None = None) -> Client:
        client = await Client.join(self.server.url, token or await self.token(role, name, identity))
        self.clients.append(client)
        return client

    def start_join(self, token: str) -> asyncio.Task:
        """A join that will wait in the waiting room: run it while the host acts."""
        async def go() -> Client:
            client = await Client.join(self.server.url, token, admission_timeout=20)
            self.clients.append(client)
            return client
        return asyncio.ensure_future(go())

    @property
    def live(self):
        return self.server.core.live.rooms.get(self.name)

    def listen(self) -> None:
        self.live.listen(self.events.append)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture
async def make_room(server):
    made: list[Room] = []

    async def make(name: str, **settings) -> Room:
        await server.create_room(name, PASSWORD, **settings)
        room = Room(server, name)
        made.append(room)
        return room

    yield make
    for room in made:
        await room.close()


# --- the waiting room ---

async def test_guest_waits_until_the_host_admits_then_media_flows(make_room):
    room = await make_room("wr-admit", waiting_room=True)
    host = await room.join("host", "Dr Host")
    room.listen()
    token = await room.token("participant", "Patient P")
    joining = room.start_join(token)
    knock = await host.wait_event("knock")
    guest_id = knock["participant"]["peer_id"]
    assert knock["participant"]["name"] == "Patient P"
    assert guest_id in room.live.waiting and guest_id not in room.live.peers
    assert not joining.done()
    # a second host arriving late sees who is waiting
    cohost = await room.join("host", "Dr Late")
    assert [w["peer_id"] for w in cohost.info["waiting"]] == [guest_id]
    await host.admit(guest_id)
    guest = await asyncio.wait_for(joining, 10)
    assert guest.peer_id == guest_id and guest.info["type"] == "joined"
    assert "waiting" not in guest.info  # only hosts are told who waits
    joined = await host.wait_event("participant-joined", match=lambda e: e["participant"]["name"] == "Patient P")
    assert joined["participant"]["peer_id"] == guest_id
    withdrawn = await cohost.wait_event("knock-withdrawn")
    assert withdrawn["outcome"] == "admitted" and withdrawn["by"]["name"] == "Dr Host"
    # admitted guests publish like anyone, and the host receives it
    track_id = await guest.publish(PatternTrack())
    await host.wait_event("track-published", match=lambda e: e["track"]["id"] == track_id)
    received = await host.subscribe(track_id)
    frame = await asyncio.wait_for(received.recv(), 15)
    assert frame.width == 320
    kinds = [e["type"] for e in room.events]
    assert kinds.index("knock") < kinds.index("participant-joined")
    assert any(e["type"] == "knock-withdrawn" and e["outcome"] == "admitted" for e in room.events)


async def test_a_waiting_guest_hears_nothing_and_cannot_negotiate(server, make_room):
    room = await make_room("wr-raw", waiting_room=True)
    token = await room.token("participant", "Raw Guest")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(server.url.replace("http", "ws", 1) + "/ws") as ws:
            # nobody is in yet: the guest waits, and the room stays for a host to find them
            await ws.send_json({"type": "join", "token": token, "id": 1})
            reply = await ws.receive_json(timeout=5)
            assert (reply["type"], reply["id"]) == ("waiting", 1)
            host = await room.join("host", "Dr Host")  # a host never waits
            assert [w["peer_id"] for w in host.info["waiting"]] == [reply["peer_id"]]
            await host.publish(ToneTrack(), source="microphone")
            for n, message in enumerate([{"type": "offer", "sdp": "v=0"}, {"type": "refresh-token"},
                                         {"type": "lock", "locked": True}], start=2):
                await ws.send_json({**message, "id": n})
                error = await ws.receive_json(timeout=5)
                assert (error["type"], error["code"], error["id"]) == ("error", "waiting", n)
            # the socket is ordered: had the guest been told of the host or its track, it would come first
            await ws.send_json({"type": "ping", "id": 9})
            assert (await ws.receive_json(timeout=5))["type"] == "pong"
            await host.admit(reply["peer_id"])
            joined = await ws.receive_json(timeout=5)
            assert joined["type"] == "joined" and [t["kind"] for t in joined["tracks"]] == ["audio"]


async def test_denied_guest_is_told_and_disconnected(make_room):
    room = await make_room("wr-deny", waiting_room=True)
    host = await room.join("host", "Dr Host")
    joining = room.start_join(await room.token("participant", "Unknown Caller"))
    knock = await host.wait_event("knock")
    await host.deny(knock["participant"]["peer_id"])
    with pytest.raises(ClientError) as err:
        await asyncio.wait_for(joining, 10)
    assert err.value.code == "denied" and "did not let you in" in err.value.message
    withdrawn = await host.wait_event("knock-withdrawn")
    assert withdrawn["outcome"] == "denied"
    assert len(room.live.waiting) == 0 and list(room.live.peers) == [host.peer_id]


async def test_a_guest_who_gives_up_leaves_the_queue(make_room):
    room = await make_room("wr-leave", waiting_room=True)
    host = await room.join("host", "Dr Host")
    joining = room.start_join(await room.token("viewer", "Impatient"))
    await host.wait_event("knock")
    joining.cancel()  # closes the socket mid-wait
    withdrawn = await host.wait_event("knock-withdrawn")
    assert withdrawn["outcome"] == "left" and len(room.live.waiting) == 0


async def test_an_admitted_identity_reconnects_without_knocking(make_room):
    room = await make_room("wr-back", waiting_room=True)
    host = await room.join("host", "Dr Host")
    token = await room.token("device", "Ambulance 7", identity="amb-7")
    joining = room.start_join(token)
    await host.admit((await host.wait_event("knock"))["participant"]["peer_id"])
    device = await asyncio.wait_for(joining, 10)
    await device.close()
    again = await room.join(token=token)  # a network drop: straight back in
    assert again.info["type"] == "joined"


# --- lock ---

async def test_lock_refuses_newcomers_but_not_hosts_or_those_already_in(make_room):
    room = await make_room("lock-1")
    host = await room.join("host", "Dr Host")
    member_token = await room.token("participant", "Member", identity="member-1")
    member = await room.join(token=member_token)
    room.listen()
    assert member.info["locked"] is False
    assert (await host.lock(True))["type"] == "ok"
    event = await member.wait_event("room-locked")
    assert event["locked"] is True and event["by"]["name"] == "Dr Host"
    with pytest.raises(ClientError) as err:
        await room.join("participant", "Latecomer")
    assert err.value.code == "room-locked"
    cohost = await room.join("host", "Dr Two")
    assert cohost.info["locked"] is True
    await member.close()
    back = await room.join(token=member_token)  # a reconnect of someone already in
    assert back.info["locked"] is True
    await host.lock(False)
    await back.wait_event("room-locked", match=lambda e: e["locked"] is False)
    await room.join("participant", "Latecomer")
    assert [e["locked"] for e in room.events if e["type"] == "room-locked"] == [True, False]
    host_identity = host.info["identity"]
    for action in ("room-lock", "room-unlock"):
        [record] = audit_records(room.server, action)
        assert (record["actor"]["identity"], record["room"], record["actor"]["name"]) == (host_identity, "lock-1", "Dr Host")


# --- remove ---

async def test_removed_participant_is_kicked_and_cannot_rejoin(make_room):
    room = await make_room("remove-1")
    host = await room.join("host", "Dr Host")
    token = await room.token("participant", "Troll", identity="troll")
    troll = await room.join(token=token)
    other = await room.join("participant", "Colleague")
    room.listen()
    await troll.publish(PatternTrack())
    await host.remove(troll.peer_id)
    kicked = await troll.wait_event("kicked")
    assert kicked["reason"] == "removed by the host"
    await troll.wait_event("closed")  # the server closes the socket
    removed = await other.wait_event("participant-removed")
    assert (removed["peer_id"], removed["by"]["name"]) == (troll.peer_id, "Dr Host")
    await other.wait_event("participant-left", match=lambda e: e["peer_id"] == troll.peer_id)
    assert troll.peer_id not in room.live.peers
    assert not [p for p in room.live.router.producers.values() if p.appdata.get("peer_id") == troll.peer_id]
    with pytest.raises(ClientError) as err:  # the token was revoked
        await room.join(token=token)
    assert err.value.code == "unauthorized" and "revoked" in err.value.message
    with pytest.raises(ClientError) as err:  # and a new token for that person is refused in this consult
        await room.join("participant", "Troll", identity="troll")
    assert err.value.code == "removed"
    assert any(e["type"] == "participant-removed" and e["identity"] == "troll" for e in room.events)
    [record] = audit_records(room.server, "participant-removed")
    assert (record["actor"]["identity"], record["object"], record["details"]["removed_name"]) == \
        (host.info["identity"], "identity/troll", "Troll")


async def test_remove_takes_every_screen_of_the_seat(make_room):
    room = await make_room("remove-seat")
    host = await room.join("host", "Dr Host")
    token = await room.token("participant", "Two Screens", identity="seat-1")
    screen1 = await room.join(token=token)
    screen2 = await Client.join(room.server.url, token, screen=2)
    room.clients.append(screen2)
    await host.remove(screen1.peer_id)
    for client in (screen1, screen2):
        assert (await client.wait_event("kicked"))["reason"] == "removed by the host"
    assert list(room.live.peers) == [host.peer_id]


async def test_remove_checks_its_target(make_room):
    room = await make_room("remove-bad")
    host = await room.join("host", "Dr Host")
    silent = await room.join("participant", "No Microphone")
    for message, code in [({"type": "remove"}, "bad-request"),
                          ({"type": "remove", "peer_id": 7}, "bad-request"),
                          ({"type": "remove", "peer_id": "nobody"}, "not-found"),
                          ({"type": "remove", "peer_id": host.peer_id}, "bad-request"),
                          ({"type": "lock", "locked": "yes"}, "bad-request"),
                          ({"type": "admit", "peer_id": "nobody"}, "not-found"),
                          ({"type": "deny", "peer_id": "nobody"}, "not-found"),
                          ({"type": "mute-participant", "peer_id": "nobody"}, "not-found"),
                          ({"type": "mute-participant", "peer_id": silent.peer_id}, "not-found")]:
        with pytest.raises(ClientError) as err:
            await host.request(message)
        assert err.value.code == code, message
    assert (await host.request({"type": "ping"}))["type"] == "pong"  # the host's session is fine


# --- mute a participant ---

async def test_host_mutes_a_microphone_and_only_its_owner_unmutes(make_room):
    room = await make_room("mute-1")
    host = await room.join("host", "Dr Host")
    speaker = await room.join("participant", "Loud Speaker")
    room.listen()
    mic = await speaker.publish(ToneTrack(), source="microphone")
    await host.wait_event("track-published", match=lambda e: e["track"]["id"] == mic)
    await host.subscribe(mic)
    producer = room.live.router.get(mic)
    await until(lambda: producer.consumers and producer.consumers[0].packets_sent > 20)
    consumer = producer.consumers[0]

    reply = await host.mute_participant(speaker.peer_id)
    assert reply["track_ids"] == [mic]
    told = await speaker.wait_event("participant-muted")
    assert told["peer_id"] == speaker.peer_id and told["by"]["name"] == "Dr Host"
    updated = await host.wait_event("track-updated", match=lambda e: e["track"]["id"] == mic)
    assert updated["track"]["muted"] is True
    # the microphone keeps sending, the server forwards none of it
    sent, received = consumer.packets_sent, producer.stats.received
    await until(lambda: producer.stats.received > received + 50)
    assert consumer.packets_sent == sent

    # a host cannot open someone's microphone
    with pytest.raises(ClientError) as err:
        await host.request({"type": "mute", "track_id": mic, "muted": False})
    assert err.value.code == "not-found"
    assert producer.paused
    # its owner can
    await speaker.set_muted(mic, False)
    await until(lambda: consumer.packets_sent > sent + 10)
    assert any(e["type"] == "participant-muted" for e in room.events)


# --- end for everyone ---

async def test_end_kicks_everyone_and_closes_the_live_room(make_room):
    room = await make_room("end-1", waiting_room=True)
    host = await room.join("host", "Dr Host")
    cohost = await room.join("host", "Dr Two")
    joining = room.start_join(await room.token("participant", "Still Waiting"))
    await host.wait_event("knock")
    events: list[dict] = []
    room.live.listen(events.append)
    await host.send_raw('{"type": "end"}')  # the host is kicked too: no reply comes
    for client in (host, cohost):
        assert (await client.wait_event("kicked"))["reason"] == "ended by host"
    with pytest.raises(ClientError) as err:
        await asyncio.wait_for(joining, 10)
    assert err.value.code == "denied" and err.value.message == "ended by host"
    await until(lambda: room.live is None)
    assert events[0]["type"] == "consult-ended" and events[0]["by"]["name"] == "Dr Host"


# --- only hosts ---

@pytest.mark.parametrize("role", ["participant", "viewer", "device"])
@pytest.mark.parametrize("message", [
    {"type": "lock", "locked": True}, {"type": "end"}, {"type": "remove", "peer_id": "HOST"},
    {"type": "mute-participant", "peer_id": "HOST"}, {"type": "admit", "peer_id": "x"},
    {"type": "deny", "peer_id": "x"}])
async def test_non_hosts_are_forbidden(make_room, role, message):
    room = await make_room("forbid")
    host = await room.join("host", "Dr Host")
    await host.publish(ToneTrack(), source="microphone")
    guest = await room.join(role, "Not A Host")
    if message.get("peer_id") == "HOST":
        message = {**message, "peer_id": host.peer_id}
    with pytest.raises(ClientError) as err:
        await guest.request(message)
    assert err.value.code == "forbidden"
    live = room.live
    assert not live.locked and host.peer_id in live.peers and guest.peer_id in live.peers
    assert not any(p.paused for p in live.router.producers.values())


# --- WHIP, which cannot wait ---

async def whip_offer() -> str:
    from aiortc import RTCConfiguration, RTCPeerConnection
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(PatternTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@pytest.mark.parametrize("case", ["waiting-room", "room-locked"])
async def test_whip_is_refused_where_it_would_have_to_wait_or_is_locked_out(make_room, case):
    room = await make_room(f"whip-{case}", waiting_room=case == "waiting-room")
    host = await room.join("host", "Dr Host")
    if case == "room-locked":
        await host.lock(True)
    token = await room.token("device", "Encoder")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{room.server.url}/whip/{room.name}", data=await whip_offer(),
                                headers={"Authorization": f"Bearer {token}",
                                         "Content-Type": "application/sdp"}) as r:
            body = await r.json()
            assert (r.status, body["code"]) == (403, case)
    assert list(room.live.peers) == [host.peer_id] and len(room.live.waiting) == 0


async def test_admitting_one_screen_admits_the_whole_seat(make_room):
    room = await make_room("wr-seat", waiting_room=True)
    host = await room.join("host", "Dr Host")
    token = await room.token("participant", "Two Screens", identity="seat-2")
    screen1 = room.start_join(token)
    first = await host.wait_event("knock")

    async def second_screen() -> Client:
        client = await Client.join(room.server.url, token, screen=2, admission_timeout=20)
        room.clients.append(client)
        return client
    screen2 = asyncio.ensure_future(second_screen())
    await host.wait_event("knock", match=lambda e: e["participant"]["screen"] == 2)
    await host.admit(first["participant"]["peer_id"])
    for joining in (screen1, screen2):
        assert (await asyncio.wait_for(joining, 10)).info["type"] == "joined"
    assert len(room.live.waiting) == 0 and len(room.live.peers) == 3
