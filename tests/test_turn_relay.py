"""TURN with a real coturn: the credentials the server hands out (token response, `joined`,
WHIP/WHEP `Link`) open allocations, expired or forged ones are refused, and an ambulance
whose UDP to the server is blocked publishes through TURN over UDP, TCP and TLS."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aioice import stun, turn
from aiortc import RTCPeerConnection, RTCSessionDescription
from telemed_client import Client

from signaling.config import Settings
from signaling.doctor import turn as doctor_turn
from signaling.ice_servers import IceServers, turn_rest_credential
from tests.coturn import Coturn
from tests.media import PatternTrack
from tests.test_forwarding import frames
from tests.test_whip_whep import NO_ICE_SERVERS, http_offer
from tests.turn_setup import SECRET, coturn, network, tls_files, turn_server  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and nftables need root")


async def allocate(coturn: Coturn, server: dict) -> tuple[str, int]:
    """A relayed address from coturn (on loopback) for one handed-out ICE server entry."""
    transport, _ = await turn.create_turn_endpoint(
        asyncio.DatagramProtocol, server_addr=("127.0.0.1", coturn.port),
        username=server["username"], password=server["credential"])
    try:
        return transport.get_extra_info("sockname")
    finally:
        transport.close()


def turn_entry(ice_servers: list[dict]) -> dict:
    (entry,) = [s for s in ice_servers if "credential" in s]
    return entry


async def test_every_handed_out_credential_opens_an_allocation(turn_server, coturn):
    await turn_server.create_room("amb-1", "pw-123456")
    token = await turn_server.token("amb-1", "pw-123456", name="Medic")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{turn_server.url}/api/rooms/amb-1/token",
                                json={"password": "pw-123456", "name": "Medic"}) as r:
            response = await r.json()
    from_token_response = (turn_entry(response["ice_servers"]), response["identity"])
    client = await Client.join(turn_server.url, token)
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    try:
        from_joined = turn_entry(client.info["ice_servers"])
        pc.addTransceiver(PatternTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{turn_server.url}/whip/amb-1", data=pc.localDescription.sdp, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}) as r:
                assert r.status == 201, await r.text()
                links = r.headers.getall("Link")
        ice_links = [link for link in links if 'rel="ice-server"' in link]
        assert len(ice_links) == 3 and all("credential-type=\"password\"" in link for link in ice_links)
        username = ice_links[0].split('username="', 1)[1].split('"', 1)[0]
        credential = ice_links[0].split('credential="', 1)[1].split('"', 1)[0]
        from_link = {"username": username, "credential": credential}
        for entry, identity in (from_token_response, (from_joined, client.info["identity"]),
                                (from_link, client.info["identity"])):
            # Named after the identity the server issued, and valid for about turn_ttl.
            expiry, named = entry["username"].split(":", 1)
            assert named == identity and abs(int(expiry) - time.time() - 3600) < 60
            host, port = await allocate(coturn, entry)
            assert host == "127.0.0.1" and port > 0
    finally:
        await pc.close()
        await client.close()


async def test_expired_and_forged_credentials_are_refused(coturn):
    urls = [f"turn:127.0.0.1:{coturn.port}"]
    stale = IceServers([], urls, SECRET, ttl=60, clock=lambda: time.time() - 600).for_identity("medic")  # expired 9 min ago
    fresh = turn_entry(IceServers([], urls, SECRET, ttl=60).for_identity("medic"))
    wrong_secret = IceServers([], urls, "another-secret-of-some-length", ttl=60).for_identity("medic")
    expiry, identity = fresh["username"].split(":", 1)
    extended = {"username": f"{int(expiry) + 86400}:{identity}", "credential": fresh["credential"]}
    for refused in (turn_entry(stale), turn_entry(wrong_secret), extended):
        with pytest.raises(stun.TransactionFailed) as failure:
            await allocate(coturn, refused)
        assert failure.value.response.attributes["ERROR-CODE"][0] == 401
    assert await allocate(coturn, fresh)  # the same coturn takes a good one


async def test_an_allocation_outlives_its_credential(coturn):
    """Why turn_ttl may be short (docs/turn.md): coturn checks the expiry when an allocation
    is made; one made in time keeps working (here: a new permission, after expiry)."""
    username, password = turn_rest_credential(SECRET, "medic", int(time.time()) + 2)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Peer(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple) -> None:
            received.put_nowait(data)

    loop = asyncio.get_running_loop()
    peer, _ = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    relay, _ = await turn.create_turn_endpoint(asyncio.DatagramProtocol, server_addr=("127.0.0.1", coturn.port),
                                               username=username, password=password)
    try:
        while time.time() < int(username.split(":")[0]) + 2:
            await asyncio.sleep(0.2)
        with pytest.raises(stun.TransactionFailed):  # the credential is stale by now for coturn too
            await allocate(coturn, {"username": username, "credential": password})
        relay.sendto(b"still relayed", peer.get_extra_info("sockname"))
        assert await asyncio.wait_for(received.get(), 10) == b"still relayed"
    finally:
        relay.close()
        peer.close()


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_ambulance_publishes_through_turn_only(turn_server, network, coturn, tls_files, transport):
    """UDP from the client namespace is dropped (all of it, for TURN over TCP and TLS), and
    TCP but to HTTP and TURN; the client offers relay candidates only. A viewer on loopback
    sees it."""
    port = int(turn_server.url.rsplit(":", 1)[1])
    network.block(udp_ports=(coturn.port,) if transport == "udp" else (),
                  tcp_ports=(port, coturn.port, coturn.tls_port))
    await turn_server.create_room("amb-2", "pw-123456")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'clients' / 'python'}",
           "SSL_CERT_FILE": str(tls_files[0])}
    peer = await asyncio.create_subprocess_exec(
        *network.command([sys.executable, "-m", "tests.turn_peer", "--url", f"http://{network.host_ip}:{port}",
                          "--room", "amb-2", "--password", "pw-123456", "--transport", transport,
                          "--probe-host", network.host_ip, "--probe-port", str(port)]),
        cwd=ROOT, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    viewer = RTCPeerConnection(NO_ICE_SERVERS)
    try:
        line = await asyncio.wait_for(peer.stdout.readline(), 60)
        outcome = json.loads(line or b"{}")
        assert outcome.get("connected"), line
        print(f"TURN/{transport}: connected {outcome['seconds']} s after the answer")  # a figure, not a limit
        assert network.dropped_udp() >= 1  # the probe straight to the server never got through

        viewer.addTransceiver("video", direction="recvonly")
        token = await turn_server.token("amb-2", "pw-123456", role="viewer", name="Stroke centre")
        status, _, answer = await http_offer(f"{turn_server.url}/whep/amb-2", token, viewer)
        assert status == 201, answer
        await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        video = viewer.getTransceivers()[0].receiver.track
        assert (await frames(video, 5))[-1].width == 320
    finally:
        await viewer.close()
        peer.stdin.close()
        try:
            await asyncio.wait_for(peer.wait(), 20)
        except asyncio.TimeoutError:
            peer.kill()
            await peer.wait()


def test_doctor_proves_the_turn_secret(coturn):
    """`telemed doctor` asks coturn for a relay with a credential minted from turn_secret,
    over each URL, the way clients will (synchronous: doctor runs its own event loop)."""
    urls = [f"turn:127.0.0.1:{coturn.port}?transport=udp", f"turn:127.0.0.1:{coturn.port}?transport=tcp"]
    good = list(doctor_turn(Settings(turn_urls=urls, turn_secret=SECRET)))
    assert [(f.status, f.detail.split(":", 1)[0]) for f in good] == [("ok", "turn_urls turn"), ("ok", "turn_urls turn")]
    wrong = list(doctor_turn(Settings(turn_urls=urls, turn_secret="not-the-secret-coturn-has")))
    assert [f.status for f in wrong] == ["fail", "fail"] and all("401" in f.detail for f in wrong)
