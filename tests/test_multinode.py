"""Several nodes, one service (docs/multinode.md): three real server processes on one real
Redis, real aiortc peers over loopback."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys

import aiohttp
import m3u8
import pytest
import yarl
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from telemed_client import Client, ClientError, create_room, fetch_token
from telemed_client.clinical import CHANNELS, Clinical
from telemed_client.ecg_sources import synthetic

from conference.live_room import LiveRoom
from conference.seat_ticket import restore_controls
from rooms import Layout
from signaling import config
from signaling.cluster_node import LocalNode
from streaming import playlist
from streaming.hls_window import HlsWindow
from streaming.playlist import LIVE_SEGMENTS
from tests.clinical_peers import bundled, potassium
from tests.cluster import NODE_TTL, ROOT, forget_node, redis_keys, restore_heartbeat, set_lease, wait_until
from tests.hls_checks import complete, playlist_until
from tests.media import PatternTrack, ToneTrack
from tests.server import ADMIN_KEY

PASSWORD = "pw-123456-multi"


async def frames(track, count: int, timeout: float = 20) -> list:
    out = []

    async def pull() -> None:
        while len(out) < count:
            out.append(await track.recv())
    await asyncio.wait_for(pull(), timeout)
    return out


async def join_publishing(url: str, room: str, name: str, channels: dict | None = None) -> tuple[Client, dict[str, str]]:
    token = (await fetch_token(url, room, PASSWORD, name=name))["token"]
    client = await Client.join(url, token, channels=channels)
    return client, {"video": await client.publish(PatternTrack(), "camera"),
                    "audio": await client.publish(ToneTrack(), "microphone")}


async def see_and_hear(viewer: Client, tracks: dict[str, str]) -> None:
    video = await viewer.subscribe(tracks["video"])
    audio = await viewer.subscribe(tracks["audio"])
    assert (await frames(video, 5))[-1].width == 320
    await frames(audio, 10)


async def status(session: aiohttp.ClientSession, method: str, url: str, **kwargs) -> tuple[int, dict]:
    async with session.request(method, url, allow_redirects=False, **kwargs) as response:
        return response.status, {"location": response.headers.get("Location"),
                                 "body": await response.text()}


async def test_two_people_on_different_nodes_see_and_hear_each_other(cluster):
    n1, n2, n3 = cluster.nodes
    await create_room(n1.url, "consult", PASSWORD, ADMIN_KEY)
    a, a_tracks = await join_publishing(n2.url, "consult", "Dr A")  # n2 places the room
    b, b_tracks = await join_publishing(n3.url, "consult", "Dr B")  # n3 sends B there
    try:
        assert a.node_url == b.node_url
        assert b.base_url == n3.url and b.node_url != n3.url  # B was redirected
        await see_and_hear(a, b_tracks)
        await see_and_hear(b, a_tracks)
        # The room's details come from the node hosting it, whichever node is asked.
        async with aiohttp.ClientSession() as http:
            code, answer = await status(http, "GET", f"{n1.url}/api/rooms/consult",
                                        headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            if a.node_url != n1.url:
                assert code == 307 and answer["location"] == f"{a.node_url}/api/rooms/consult"
            async with http.get(f"{n1.url}/api/rooms/consult",
                                headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as response:
                # aiohttp drops the bearer on a redirect to another origin, as browsers do:
                # the client sends it again to the node named in Location.
                if response.status == 401:
                    async with http.get(str(response.url), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as again:
                        body = await again.json()
                else:
                    body = await response.json()
        assert sorted(p["name"] for p in body["participants"]) == ["Dr A", "Dr B"]
    finally:
        await a.close()
        await b.close()


async def test_a_token_minted_on_one_node_works_on_another(cluster):
    n1, n2, n3 = cluster.nodes
    await create_room(n1.url, "shared", PASSWORD, ADMIN_KEY)
    minted = await fetch_token(n1.url, "shared", role="participant", name="Nurse", api_key=ADMIN_KEY)
    async with aiohttp.ClientSession() as http:
        for node in (n2, n3):
            async with http.get(f"{node.url}/api/rooms/shared",
                                headers={"Authorization": f"Bearer {minted['token']}"}) as response:
                assert response.status == 200, await response.text()
        # One signed by a key no node shares is refused everywhere.
        forged = minted["token"][:-4] + ("AAAA" if not minted["token"].endswith("AAAA") else "BBBB")
        async with http.get(f"{n3.url}/api/rooms/shared",
                            headers={"Authorization": f"Bearer {forged}"}) as response:
            assert response.status == 401
            assert (await response.json())["code"] == "unauthorized"
        # An invite made on one node is redeemed on another, and its use counted once for all.
        async with http.post(f"{n1.url}/api/rooms/shared/invites", json={"role": "viewer", "max_uses": 1},
                             headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as response:
            code = (await response.json())["code"]
    assert (await fetch_token(n2.url, "shared", invite=code, name="Student"))["role"] == "viewer"
    with pytest.raises(ClientError) as used:
        await fetch_token(n3.url, "shared", invite=code, name="Student 2")
    assert used.value.code == "invite-used-up"
    # And it joins through a node that did not mint it; a forged one is refused at the door.
    client = await Client.join(n3.url, minted["token"])
    await client.close()
    with pytest.raises(ClientError) as refused:
        await Client.join(n2.url, forged)
    assert refused.value.code == "unauthorized"
    # Each node kept its own audit chain in the shared data directory, and each verifies.
    for node in cluster.nodes:
        verify = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "signaling", "audit", "verify", "--data-dir", str(cluster.data_dir),
            "--room-store", cluster.redis.url, "--node-id", node.id], cwd=ROOT, capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert (cluster.data_dir / "nodes" / node.id / "audit.jsonl").is_file()


def test_a_node_that_cannot_reach_redis_refuses_to_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "signaling", "serve", "--port", "0", "--data-dir", str(tmp_path),
         "--room-store", "redis://:secret-pw@127.0.0.1:1/0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Redis unreachable" in result.stderr and "Traceback" not in result.stderr
    assert "secret-pw" not in result.stderr


@pytest.mark.parametrize("setting, value, message", [
    ("node_id", "node one", "node_id"),
    ("public_url", "https://node1.example.org/telemed", "public_url"),
    ("node_ttl", "0.1", "node_ttl"),
    ("token_key_rotation", "60", "token_key_rotation"),
])
def test_multinode_settings_are_checked(setting, value, message):
    with pytest.raises(ValueError, match=message):
        config.load(environ={f"TELEMED_{setting.upper()}": value})


async def test_a_login_lockout_holds_across_nodes(cluster):
    n1, n2, n3 = cluster.nodes
    await create_room(n1.url, "locked", PASSWORD, ADMIN_KEY)
    for node in (n1, n2, n1, n2, n3):  # five wrong passwords, spread over the nodes
        with pytest.raises(ClientError) as refused:
            await fetch_token(node.url, "locked", "wrong-password-1")
        assert refused.value.code == "unauthorized"
    for node in (n1, n2, n3):  # now every node refuses, even the right password, unchecked
        with pytest.raises(ClientError) as throttled:
            await fetch_token(node.url, "locked", PASSWORD)
        assert throttled.value.code == "rate-limited"


async def test_twenty_rooms_spread_over_three_nodes(cluster):
    entry = cluster.nodes[0]
    names = [f"ward-{i}" for i in range(20)]
    for name in names:
        await create_room(entry.url, name, PASSWORD, ADMIN_KEY)
    clients = []
    try:
        for i, name in enumerate(names):  # enter through every node in turn
            node = cluster.nodes[i % 3]
            token = (await fetch_token(node.url, name, role="host", name="H", api_key=ADMIN_KEY))["token"]
            clients.append(await Client.join(node.url, token, keep_token_fresh=False))
        hosts = {c.node_url for c in clients}
        per_node = {node.id: sum(c.node_url == node.url for c in clients) for node in cluster.nodes}
        assert hosts == {node.url for node in cluster.nodes}, per_node
        # Equal nodes: a room weighs more than any node's CPU noise, so each gets about a third.
        assert all(5 <= count <= 8 for count in per_node.values()), per_node
        async with aiohttp.ClientSession() as http:
            for node in cluster.nodes:
                async with http.get(f"{node.url}/healthz") as response:
                    assert (await response.json())["rooms"] == per_node[node.id]
    finally:
        for client in clients:
            await client.close()


async def test_redis_restarting_mid_call_is_survived(cluster):
    n1, n2, n3 = cluster.nodes
    await create_room(n1.url, "resilient", PASSWORD, ADMIN_KEY)
    a, a_tracks = await join_publishing(n1.url, "resilient", "Dr A")
    b, b_tracks = await join_publishing(n2.url, "resilient", "Dr B")
    try:
        video_at_b = await b.subscribe(a_tracks["video"])
        audio_at_a = await a.subscribe(b_tracks["audio"])
        await frames(video_at_b, 3)
        await asyncio.to_thread(cluster.redis.stop)  # off the loop: the peers' media runs on it
        # The call goes on without Redis: media never touches it.
        await frames(video_at_b, 30)
        await frames(audio_at_a, 50)
        # A new login meanwhile gets a clean refusal, not a hang or a 500.
        with pytest.raises(ClientError) as refused:
            await fetch_token(n3.url, "resilient", PASSWORD)
        assert refused.value.code == "store-unavailable"
        await asyncio.to_thread(cluster.redis.start)
        # Every node registers again and the host re-asserts the room's lease.
        await asyncio.to_thread(
            wait_until, lambda: len(redis_keys(cluster.redis.url, "telemed:node:*")) == 3
            and len(redis_keys(cluster.redis.url, "telemed:lease:resilient")) == 1,
            6 * NODE_TTL, "the nodes did not re-register or re-assert their leases")
        await frames(video_at_b, 30)
        # Someone new, entering elsewhere, lands in the same call.
        c, _ = await join_publishing(n3.url, "resilient", "Dr C")
        try:
            assert c.node_url == a.node_url
            await see_and_hear(c, a_tracks)
        finally:
            await c.close()
    finally:
        await a.close()
        await b.close()


async def test_a_killed_nodes_clients_resume_their_seats_on_another_node(cluster):
    """kill -9 of the host: its clients resume on the room's new host through the resume
    path network changes use (same peer id, track ids, subscriptions; the others see a
    reconnect, never a leave), and media flows again; the room's clinical state comes back
    from its session log on the shared data directory, and its sequence goes on. The time
    it takes is measured in benchmarks/multinode.py, not here."""
    n1, n2, n3 = cluster.nodes
    await create_room(n1.url, "ambulance", PASSWORD, ADMIN_KEY)
    await asyncio.to_thread(set_lease, cluster.redis.url, "ambulance", "n2")  # hosted by n2
    # Both enter at nodes that survive, as clients behind a load balancer do.
    medic, medic_tracks = await join_publishing(n1.url, "ambulance", "Medic", CHANNELS)
    doctor, doctor_tracks = await join_publishing(n3.url, "ambulance", "Doctor", CHANNELS)
    seen: list[dict] = []
    doctor.on_event = seen.append
    http = aiohttp.ClientSession()
    host = {"Authorization": f"Bearer {medic.token}"}
    killed = False
    ecg: asyncio.Future | None = None
    try:
        assert medic.node_url == doctor.node_url == n2.url
        await frames(await doctor.subscribe(medic_tracks["video"]), 3)
        # The room is recorded and streamed live when its host dies.
        async with http.post(f"{n2.url}/api/rooms/ambulance/recordings", headers=host) as r:
            assert r.status == 201, await r.text()
            rec_id = (await r.json())["recording"]["id"]
        async with http.post(f"{n2.url}/api/rooms/ambulance/live", headers=host) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{n2.url}/api/rooms/ambulance/live/link", headers=host) as r:
            link = (await r.json())["url"]
        before = await playlist_until(http, f"{n1.url}{link}", lambda p: len(complete(p)) >= 1)
        await recorded(http, f"{n2.url}/api/rooms/ambulance/recordings/{rec_id}", host, medic_tracks, 0)
        # The doctor shares a lab result and a CT image: on record, acknowledged. The
        # medic streams an ECG, which the doctor sees.
        clinical, device = await Clinical.open(doctor), await Clinical.open(medic)
        lab = await clinical.send_fhir(potassium())
        dicom = await clinical.send_dicom(bundled("CT_small.dcm"), "ct.dcm")
        ecg = asyncio.ensure_future(device.stream_ecg(synthetic(3, 500, 1.0), stream_id=7, seconds=math.inf))
        await asyncio.wait_for(clinical.ecg_frames.get(), 20)
        before_kill, device_before_kill = len(clinical.messages), len(device.messages)
        # The host removes someone, then locks the consult.
        intern = await Client.join(n1.url, await intern_token(n1.url), auto_resume=False)
        await medic.remove(intern.peer_id)
        await intern.close()
        await medic.lock(True)
        medic_resumed, doctor_resumed = medic.next_resume(), doctor.next_resume()
        os.kill(n2.proc.pid, signal.SIGKILL)
        killed = True
        await asyncio.wait_for(asyncio.gather(medic_resumed, doctor_resumed), 4 * NODE_TTL)
        device_resumed = len(device.messages)  # the dead node's acknowledgements are all before
        assert medic.node_url == doctor.node_url != n2.url
        assert medic.info["resumed"] and doctor.info["resumed"], (medic.info, doctor.info)  # the same seats
        assert medic.info["peer_id"] == medic.peer_id and sorted(medic._published.values()) == sorted(
            medic_tracks.values())
        # The doctor's subscription came back by itself, and the medic's camera plays in it.
        assert (await frames(doctor.remote_tracks[medic_tracks["video"]], 5))[-1].width == 320
        await frames(await medic.subscribe(doctor_tracks["audio"]), 10)
        # The doctor saw the medic come back (or found it back already), never leave or rejoin.
        about_medic = [e["type"] for e in seen if medic.peer_id in (e.get("peer_id"), e.get("participant", {}).get("peer_id"))]
        assert "participant-left" not in about_medic and "participant-joined" not in about_medic, seen
        assert "participant-reconnected" in about_medic or any(
            p["peer_id"] == medic.peer_id and not p["reconnecting"] for p in doctor.info["participants"])
        # The new host read the room's clinical state back from the dead node's session log:
        # the resumed doctor finds the lab and the image (served by the new host), and the
        # next share continues the sequence.
        state = await clinical.wait_for(lambda m: m["type"] == "clinical-state", start=before_kill)
        assert [(x["seq"], x["loinc"]) for x in state["labs"]] == [(lab["seq"], "2823-3")], state
        assert [(x["seq"], x["sha256"]) for x in state["dicom"]] == [(dicom["seq"], dicom["sha256"])], state
        # The ECG stream goes on: announced again (continuing the first), acknowledged and
        # relayed by the new host, its sender never told it is unknown there.
        assert [(s["stream_id"], s["sender"], s["continues"]) for s in state["ecg_streams"]] == [
            (7, medic.peer_id, dicom["seq"] + 1)], state
        assert state["seq"] == dicom["seq"] + 2
        await device.wait_for(lambda m: m["type"] == "ecg-ack" and m["seq"] >= 0, start=device_resumed)
        while not clinical.ecg_frames.empty():
            clinical.ecg_frames.get_nowait()
        await asyncio.wait_for(clinical.ecg_frames.get(), 20)
        assert not [m for m in device.messages[device_before_kill:] if m["type"] == "error"]
        assert await clinical.fetch(state["dicom"][0]["url"]) == bundled("CT_small.dcm")
        # Sent again (as after a lost answer), the same lab and image get their first answers.
        start = len(clinical.messages)
        clinical.send({"type": "lab-fhir", "resource": potassium(), "ref": lab["ref"]})
        again = await clinical.wait_for(lambda m: m.get("ref") == lab["ref"], start=start)
        assert (again["type"], again["seq"]) == ("lab", lab["seq"]), again
        resent = await clinical.send_dicom(bundled("CT_small.dcm"), "ct.dcm", transfer_id=dicom["transfer_id"])
        assert resent["seq"] == dicom["seq"] and await clinical.fetch(resent["url"]) == bundled("CT_small.dcm")
        assert (await clinical.send_fhir(potassium(6.8)))["seq"] == state["seq"] + 1  # nothing shared twice
        # The host controls came over in the seat tickets: still locked, the removed still out.
        assert medic.info["locked"] and doctor.info["locked"]
        for token, code in ((await intern_token(n1.url), "removed"),
                            ((await fetch_token(n1.url, "ambulance", PASSWORD, role="participant"))["token"],
                             "room-locked")):
            with pytest.raises(ClientError) as refused:
                await Client.join(n1.url, token, auto_resume=False)
            assert refused.value.code == code
        # The seat is the credential's: even its own token without its secret is refused.
        with pytest.raises(ClientError) as refused:
            await Client.join(n1.url, medic.token, resume={"resume": medic.peer_id, "resume_secret": "guessed"},
                              auto_resume=False)
        assert refused.value.code == "forbidden"
        # The same live stream goes on at the new host (any node sends players there), after a
        # discontinuity, its media sequence numbers growing on.
        after = await playlist_until(http, f"{n1.url}{link}", lambda p: any(s.discontinuity for s in complete(p)))
        assert after.segments[0].uri.split("/")[0] == before.segments[0].uri.split("/")[0]  # same stream id
        assert after.media_sequence > before.media_sequence + len(complete(before)) - 1
        assert after.segments[0].discontinuity and not after.discontinuity_sequence, after.dumps()
        # The recording goes on in a second segment of the same recording.
        recording_url = f"{medic.node_url}/api/rooms/ambulance/recordings/{rec_id}"
        await recorded(http, recording_url, host, medic_tracks, 1)
        async with http.post(f"{recording_url}/stop", headers=host) as r:
            assert r.status == 200, await r.text()
            manifest = (await r.json())["recording"]
        assert manifest["state"] == "stopped" and len(manifest["segments"]) == 2
        by_segment = [{t["track_id"] for t in manifest["tracks"] if t["segment"] == n} for n in (0, 1)]
        # The same tracks go on (tracks that had written nothing yet are not listed).
        assert set(medic_tracks.values()) <= by_segment[0] & by_segment[1], manifest["tracks"]
    finally:
        if ecg is not None:
            ecg.cancel()
        await http.close()
        await medic.close()
        await doctor.close()
        if killed:  # the tests that follow have three nodes again
            await asyncio.to_thread(cluster.replace, n2)


async def intern_token(url: str) -> str:
    """Always the same identity (an API key vouches for it), unlike a password login."""
    return (await fetch_token(url, "ambulance", role="participant", name="Intern", identity="intern-1",
                              api_key=ADMIN_KEY))["token"]


async def recorded(http: aiohttp.ClientSession, url: str, headers: dict, tracks: dict[str, str],
                   segment: int) -> None:
    """Wait until the recording at ``url`` has written ``tracks`` in ``segment`` (its
    manifest is saved every second)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        async with http.get(url, headers=headers) as r:
            assert r.status == 200, await r.text()
            manifest = await r.json()
        if set(tracks.values()) <= {t["track_id"] for t in manifest["tracks"] if t["segment"] == segment}:
            return
        assert asyncio.get_running_loop().time() < deadline, manifest
        await asyncio.sleep(0.3)


async def whip_post(http: aiohttp.ClientSession, entry: str, path: str, token: str,
                    pc: RTCPeerConnection) -> tuple[str, str]:
    """Offer at ``entry``; a 307 names the hosting node, where the offer (and the bearer,
    which no client carries across origins by itself) goes again. (answer, session URL)"""
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}
    url = f"{entry}{path}"
    async with http.post(url, data=pc.localDescription.sdp, headers=headers, allow_redirects=False) as r:
        assert r.status == 307, await r.text()
        url = r.headers["Location"]
    async with http.post(url, data=pc.localDescription.sdp, headers=headers, allow_redirects=False) as r:
        assert r.status == 201, await r.text()
        return await r.text(), str(r.url.join(yarl.URL(r.headers["Location"])))


async def test_a_newcomer_is_not_sent_to_a_host_that_died_moments_ago(cluster):
    """A newcomer sent on to a room's host has that host's port checked beside it: killed
    moments ago (its heartbeat still fresh), it is forgotten, and the newcomer's next try
    is placed at once rather than after the heartbeat lapses."""
    n1, n2, n3 = cluster.nodes
    await create_room(n1.url, "crashed", PASSWORD, ADMIN_KEY)
    await asyncio.to_thread(set_lease, cluster.redis.url, "crashed", "n2")  # hosted by n2
    token = (await fetch_token(n1.url, "crashed", role="host", name="H", api_key=ADMIN_KEY))["token"]
    os.kill(n2.proc.pid, signal.SIGKILL)
    n2.proc.wait()
    try:
        # Its heartbeat made to live on for a minute, as if it had beaten just before.
        await asyncio.to_thread(restore_heartbeat, cluster.redis.url, "n2", n2.url)
        async def forgotten(within: float) -> bool:
            deadline = asyncio.get_running_loop().time() + within
            while await asyncio.to_thread(redis_keys, cluster.redis.url, "telemed:node:n2"):
                if asyncio.get_running_loop().time() > deadline:
                    return False
                await asyncio.sleep(0.05)
            return True

        async with aiohttp.ClientSession() as http:
            # The first try is sent on to the dead host. A check that cannot conclude (the
            # host's port not answering within a second on a starved machine) forgets
            # nothing, so the test goes back to the entry as the device client does, well
            # within the minute the dead host's heartbeat was made to live.
            for attempt in range(20):
                async with http.ws_connect(f"{n1.url}/ws") as ws:
                    await ws.send_json({"type": "join", "token": token})
                    reply = await ws.receive_json(timeout=20)
                assert attempt > 0 or (reply["type"] == "moved" and reply["url"] == n2.url), reply
                if await forgotten(within=1.0):
                    break
            else:
                entry_log = (cluster.data_dir.parent / f"{n1.id}.log").read_text(errors="replace")
                pytest.fail(f"the dead host was not forgotten; {n1.id}'s log ends:\n{entry_log[-3000:]}")
        newcomer = await Client.join(n1.url, token, keep_token_fresh=False, auto_resume=False)
        assert newcomer.node_url in (n1.url, n3.url)
        await newcomer.close()
        # The device client does it by itself: sent to a dead host, it goes back to the entry.
        await create_room(n1.url, "crashed-2", PASSWORD, ADMIN_KEY)
        await asyncio.to_thread(set_lease, cluster.redis.url, "crashed-2", "n2")
        await asyncio.to_thread(restore_heartbeat, cluster.redis.url, "n2", n2.url)
        device = await Client.join(n1.url, (await fetch_token(n1.url, "crashed-2", role="host", name="D",
                                                               api_key=ADMIN_KEY))["token"],
                                   keep_token_fresh=False, auto_resume=False)
        assert device.node_url in (n1.url, n3.url)
        await device.close()
    finally:
        await asyncio.to_thread(cluster.replace, n2)


async def test_a_page_names_a_node_that_joined_a_moment_ago(cluster):
    """A page's CSP is fixed when it is served: it must name a node that joined after
    the serving node's last heartbeat (or the page could never follow a `moved` there),
    and that node's pages must be let in at once by the WebSocket's Origin check."""
    n1 = cluster.nodes[0]
    newcomer = "http://127.0.0.1:9"  # registered as a node, never serving
    await asyncio.to_thread(restore_heartbeat, cluster.redis.url, "n9", newcomer)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{n1.url}/room.html") as r:
                assert r.status == 200
                assert f"{newcomer} ws://127.0.0.1:9" in r.headers["Content-Security-Policy"]
            async with http.ws_connect(f"{n1.url}/ws", headers={"Origin": newcomer}) as ws:
                await ws.send_json({"type": "ping"})
                assert (await ws.receive_json(timeout=10))["type"] == "pong"
    finally:
        await asyncio.to_thread(forget_node, cluster.redis.url, "n9")


async def test_whip_whep_and_hls_are_redirected_to_the_hosting_node(cluster):
    n1, n2, n3 = cluster.nodes
    await create_room(n1.url, "theatre", PASSWORD, ADMIN_KEY)
    await asyncio.to_thread(set_lease, cluster.redis.url, "theatre", "n1")
    host_token = (await fetch_token(n1.url, "theatre", PASSWORD, role="host", name="Surgeon"))["token"]
    surgeon = await Client.join(n1.url, host_token)  # the room goes live on n1, which holds its lease
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        assert surgeon.node_url == n1.url
        publisher.addTransceiver(PatternTrack(), direction="sendonly")
        device = (await fetch_token(n2.url, "theatre", PASSWORD, role="device", name="OR camera"))["token"]
        async with aiohttp.ClientSession() as http:
            answer, session = await whip_post(http, n2.url, "/whip/theatre", device, publisher)
            assert session.startswith(f"{n1.url}/whip/theatre/")
            await publisher.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            await surgeon.wait_event("track-published", timeout=20)
            viewer.addTransceiver("video", direction="recvonly")
            trainee = (await fetch_token(n3.url, "theatre", PASSWORD, role="viewer", name="Trainee"))["token"]
            answer, _ = await whip_post(http, n3.url, "/whep/theatre", trainee, viewer)
            await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            assert (await frames(viewer.getTransceivers()[0].receiver.track, 5))[-1].width == 320
            # An HLS link made by any node plays from the hosting node, query and all.
            async with http.post(f"{n3.url}/api/rooms/theatre/live/link",
                                 headers={"Authorization": f"Bearer {trainee}"}) as r:
                link = (await r.json())["url"]
            code, answer = await status(http, "GET", f"{n3.url}{link}")
            assert code == 307 and answer["location"] == f"{n1.url}{link}"
            code, _ = await status(http, "GET", f"{n1.url}{link}")
            assert code != 307  # the host answers itself (not live: 404)
            # So does a host starting a recording: the recorder runs where the room is.
            code, answer = await status(http, "POST", f"{n2.url}/api/rooms/theatre/recordings",
                                        headers={"Authorization": f"Bearer {host_token}"})
            assert code == 307 and answer["location"] == f"{n1.url}/api/rooms/theatre/recordings"
            async with http.delete(session, headers={"Authorization": f"Bearer {device}"}) as r:
                assert r.status == 200
    finally:
        await publisher.close()
        await viewer.close()
        await surgeon.close()


async def test_a_room_live_on_a_node_that_lost_its_lease_moves_to_the_lease_holder(cluster):
    n1, n2, _ = cluster.nodes
    await create_room(n1.url, "split", PASSWORD, ADMIN_KEY)
    await asyncio.to_thread(set_lease, cluster.redis.url, "split", "n1")  # hosted by n1
    token = (await fetch_token(n1.url, "split", role="host", name="H", api_key=ADMIN_KEY))["token"]
    client = await Client.join(n1.url, token, keep_token_fresh=False)
    try:
        assert client.node_url == n1.url
        # As if n1's heartbeat had lapsed for a while and n2 had been given the room meanwhile.
        await asyncio.to_thread(set_lease, cluster.redis.url, "split", "n2")
        moved = await client.wait_event("moved", timeout=4 * NODE_TTL)
        assert moved["url"] == n2.url
        await client.wait_event("closed", timeout=10)
        again = await Client.join(n1.url, token, keep_token_fresh=False)  # the entry sends it on
        assert again.node_url == n2.url
        await again.close()
    finally:
        await client.close()


async def test_one_node_needs_no_redis(server):
    """The embedded default: no cluster, no shared limiter, every room here."""
    assert isinstance(server.core.node, LocalNode) and server.core.shared_logins is None
    await server.create_room("solo", PASSWORD)
    client = await Client.join(server.url, await server.token("solo", PASSWORD))
    try:
        assert client.node_url == server.url
    finally:
        await client.close()


async def test_a_node_shutting_down_frees_its_rooms_at_once(cluster):
    leaving = cluster.start_node("n4", shutdown_grace="30", shutdown_timeout="40")
    await create_room(leaving.url, "handover", PASSWORD, ADMIN_KEY)
    token = (await fetch_token(leaving.url, "handover", role="host", name="H", api_key=ADMIN_KEY))["token"]
    client = await Client.join(leaving.url, token, keep_token_fresh=False)
    try:
        assert client.node_url == leaving.url
        leaving.proc.send_signal(signal.SIGTERM)
        assert (await client.wait_event("reconnect", timeout=20))["reason"] == "server-shutdown"
        # Still draining (30 s of grace, and our client stays), it has already left the
        # registry and freed the room's lease, rather than after its heartbeat's TTL.
        await asyncio.to_thread(
            wait_until, lambda: not redis_keys(cluster.redis.url, "telemed:lease:handover")
            and not redis_keys(cluster.redis.url, "telemed:node:n4"), 20, "n4 kept its lease while draining")
        assert leaving.proc.poll() is None
        newcomer = await Client.join(cluster.nodes[0].url, token, keep_token_fresh=False)
        assert newcomer.node_url in {node.url for node in cluster.nodes if node is not leaving}
        await newcomer.close()
    finally:
        await client.close()  # the last peer gone, n4 ends its drain and exits
        cluster.nodes.remove(leaving)


def test_a_carried_on_live_window_counts_its_discontinuity():
    """A stream carried on after its node died: media sequence numbers grow on, the first
    segment is a discontinuity, and once it leaves the playlist the discontinuity sequence
    counts it (RFC 8216 §4.3.3.3)."""
    window = HlsWindow(keep_segments=12, first_msn=42, discontinuity_sequence=3)
    for i in range(LIVE_SEGMENTS + 2):
        window.add_part(b"x", 1.0, True, True, True, 1000.0 + i)
    text = playlist.render(window, "s1", 0.3, 1.0, low_latency=False)
    parsed = m3u8.loads(text)
    assert parsed.media_sequence == 44 and parsed.discontinuity_sequence == 4
    assert not any(s.discontinuity for s in parsed.segments)
    first = m3u8.loads(playlist.render(HlsWindow(first_msn=42, discontinuity_sequence=3), "s1", 0.3, 1.0, False))
    assert first.media_sequence == 42
    window = HlsWindow(first_msn=42, discontinuity_sequence=3)
    window.add_part(b"x", 1.0, True, True, True, 1000.0)
    parsed = m3u8.loads(playlist.render(window, "s1", 0.3, 1.0, low_latency=True))
    assert parsed.segments[0].discontinuity and parsed.discontinuity_sequence == 3


def test_the_host_controls_of_the_newest_seat_ticket_come_back():
    room = LiveRoom("ward", Layout())
    older = {"room": {"locked": True, "barred": ["a"], "admitted": ["b"], "at": 100.0}}
    newer = {"room": {"locked": False, "barred": ["a", "c"], "admitted": ["b", "d"], "at": 200.0}}
    restore_controls(room, [newer, {"v": 1}, older])  # a ticket without controls counts for nothing
    assert not room.locked and room.barred == {"a", "c"} and room.admitted == {"b", "d"}
