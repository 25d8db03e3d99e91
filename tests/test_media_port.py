"""The shared media port (sfu/media_port.py): every peer on one UDP port, garbage
dropped and counted, demultiplexing entries freed when peers leave."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess

import aioice.stun

from telemed_client import Client
from tests.media import PatternTrack, ToneTrack
from tests.polling import until
from tests.test_forwarding import frames


def ice_of(pc):
    """The aioice connection under an RTCPeerConnection (max-bundle: one)."""
    return pc.sctp.transport.transport._connection


def server_ice(server, room: str, peer_id: str):
    return ice_of(server.core.live.rooms[room].peers[peer_id].connection.pc)


def udp_ports_of_this_process() -> list[tuple[str, int]]:
    """Local (address, port) of every UDP socket this process holds, as `ss` reports it."""
    out = subprocess.run(["ss", "-H", "-u", "-a", "-n", "-p"], capture_output=True, text=True,
                         check=True).stdout
    mine = []
    for line in out.splitlines():
        if f"pid={os.getpid()}," not in line:
            continue
        local = line.split()[3]
        host, _, port = local.rpartition(":")
        mine.append((host.strip("[]"), int(port)))
    return mine


def drop_our_own_checks(monkeypatch) -> list:
    """The server's own connectivity checks never leave: peers connect on theirs alone."""
    from sfu.media_port import PeerRoute
    from sfu.stun_peek import BINDING_REQUEST

    sendto = PeerRoute.sendto
    dropped: list = []

    def no_checks_of_ours(self, data: bytes, addr=None) -> None:
        if data[0:2] == BINDING_REQUEST:
            dropped.append(addr)
            return
        sendto(self, data, addr)

    monkeypatch.setattr(PeerRoute, "sendto", no_checks_of_ours)
    return dropped


async def test_many_peers_share_one_udp_port(server, monkeypatch):
    """...and connect on their own nominating checks, as to an ICE-lite server: the server's
    own checks are dropped here, yet ICE completes and DTLS starts without them."""
    drop_our_own_checks(monkeypatch)
    port = server.core.media_port.port
    await server.create_room("one-port", "pw-123456")
    before = set(udp_ports_of_this_process())
    assert ("127.0.0.1", port) in before
    publisher = await Client.join(server.url, await server.mint("one-port", "participant", "OR"))
    viewers: list[Client] = []
    try:
        audio = await publisher.publish(ToneTrack(), "microphone")
        for n in range(9):
            viewer = await Client.join(server.url, await server.mint("one-port", "participant", f"V{n}"))
            viewers.append(viewer)
            await frames(await viewer.subscribe(audio), 5)
        peers = [publisher, *viewers]
        # Every client's selected pair ends at the one media port...
        for client in peers:
            assert ice_of(client.pc)._nominated[1].remote_addr == ("127.0.0.1", port)
        # ...and the server bound no UDP socket for them: the sockets ss finds new in this
        # process are the ten clients' own.
        client_ports = {p.transport.get_extra_info("sockname")[1] for c in peers for p in ice_of(c.pc)._protocols}
        new = [a for a in set(udp_ports_of_this_process()) - before if a[1] not in client_ports]
        assert new == [], new
        assert ("127.0.0.1", port) in udp_ports_of_this_process()
        for client in peers:
            ice = server_ice(server, "one-port", client.peer_id)
            assert ice._nominated[1].local_addr == ("127.0.0.1", port)
        # Every connection's media (the publisher's RTP, the viewers' RTCP, about once a
        # second) is decrypted by the port's receive step (sfu/port_receive.py).
        assert len(server.core.media_port.sockets[0].receiving) == len(peers)
        for client in peers:
            connection = server.core.live.rooms["one-port"].peers[client.peer_id].connection
            [transport] = connection._transports.values()  # max-bundle: one
            await until(lambda: transport._entry is not None and transport._entry.media > 0,
                        timeout=10, what=f"{client.peer_id}'s media through the receive step")
    finally:
        for viewer in viewers:
            await viewer.close()
        await publisher.close()


def binding_request(username: str | None, password: str = "x" * 22) -> bytes:
    request = aioice.stun.Message(message_method=aioice.stun.Method.BINDING,
                                  message_class=aioice.stun.Class.REQUEST)
    if username is not None:
        request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1
    request.add_message_integrity(password.encode())
    return bytes(request)


async def test_garbage_and_unknown_ufrags_are_dropped_and_others_carry_on(server):
    media_port = server.core.media_port
    await server.create_room("noise", "pw-123456")
    publisher = await Client.join(server.url, await server.mint("noise", "participant", "OR"))
    viewer = await Client.join(server.url, await server.mint("noise", "participant", "Trainee"))
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.1", 0))
    attacker.setblocking(False)
    try:
        video = await publisher.publish(PatternTrack(), "camera")
        track = await viewer.subscribe(video)
        await frames(track, 5)
        known_ufrag = server_ice(server, "noise", viewer.peer_id).local_username
        rng = random.Random(12)
        garbage = [bytes([rng.choice([2, 3, 7, 70, 100, 200, 255])]) + rng.randbytes(rng.randrange(0, 300))
                   for _ in range(300)]
        garbage += [b"", b"\x00\x01" + bytes(10)]  # empty, and STUN too short for a header
        unknown_ufrag = [binding_request(f"{rng.randbytes(5).hex()}:peer") for _ in range(300)]
        unknown_ufrag += [binding_request(None), b"\x00\x01\x00\x08\x21\x12\xa4\x42" + bytes(12) + b"\x00\x06\xff\xff"]
        unknown_address = [b"\x80\x60" + rng.randbytes(100) for _ in range(200)]   # SRTP from no peer
        unknown_address += [b"\x16\xfe\xfd" + rng.randbytes(60) for _ in range(100)]  # DTLS from no peer
        forged = [binding_request(f"{known_ufrag}:peer") for _ in range(20)]  # the right ufrag, a wrong key
        before = (media_port.counters.garbage, media_port.counters.unknown_ufrag,
                  media_port.counters.unknown_address)
        burst = garbage + unknown_ufrag + unknown_address + forged
        rng.shuffle(burst)
        target = ("127.0.0.1", media_port.port)
        sent = 0
        for start in range(0, len(burst), 50):
            # the server shares this event loop: let it read each slice before the next
            for datagram in burst[start:start + 50]:
                attacker.sendto(datagram, target)
            sent += len(burst[start:start + 50])
            accounted = sent - sum(1 for d in burst[:sent] if d in forged)
            await until(lambda: sum((media_port.counters.garbage, media_port.counters.unknown_ufrag,
                                     media_port.counters.unknown_address)) - sum(before) >= accounted,
                        what="the burst to be read")
        assert media_port.counters.garbage - before[0] == len(garbage)
        assert media_port.counters.unknown_ufrag - before[1] == len(unknown_ufrag)
        assert media_port.counters.unknown_address - before[2] == len(unknown_address)
        metrics = server.core.metrics.render()
        assert f'telemed_media_port_dropped_total{{reason="unknown_ufrag"}} {float(media_port.counters.unknown_ufrag)}' in metrics
        # A request with a known ufrag but a forged key is refused by ICE, binding nothing.
        assert all(attacker.getsockname() not in s.by_address for s in media_port.sockets)
        # The peers carry on, and a newcomer still joins on the same port.
        await frames(track, 10)
        late = await Client.join(server.url, await server.mint("noise", "participant", "Late"))
        try:
            await frames(await late.subscribe(video), 5)
        finally:
            await late.close()
    finally:
        attacker.close()
        await viewer.close()
        await publisher.close()


async def test_churn_frees_demultiplexing_entries(server):
    media_port = server.core.media_port
    await server.create_room("churn-port", "pw-123456")
    anchor = await Client.join(server.url, await server.mint("churn-port", "participant", "Anchor"))
    try:
        video = await anchor.publish(PatternTrack(), "camera")
        guests = []
        for cycle in range(8):
            # Vanishing means gone: a client that resumed would hold a new entry on purpose.
            client = await Client.join(server.url, await server.mint("churn-port", "participant", f"G{cycle}"),
                                       auto_resume=False)
            await frames(await client.subscribe(video), 2)
            ice = server_ice(server, "churn-port", client.peer_id)
            guests.append((ice.local_username, ice._nominated[1].remote_addr))
            if cycle % 2:
                await client.pc.close()  # vanish without 'leave'
                await client._ws.close()
                await client._session.close()
            else:
                await client.close()

        def freed() -> bool:
            return (not any(u in s.by_ufrag for u, _ in guests for s in media_port.sockets)
                    and not any(a in s.by_address for _, a in guests for s in media_port.sockets))
        await until(freed, what="the guests' entries to go")
        anchor_ufrag = server_ice(server, "churn-port", anchor.peer_id).local_username
        assert [u for s in media_port.sockets for u in s.by_ufrag] == [anchor_ufrag]
        assert len(media_port.consent) == 1
        assert not media_port.responses or len(media_port.responses) <= 1
    finally:
        await anchor.close()
    await until(lambda: media_port.entries() == 0 and len(media_port.consent) == 0,
                what="the port to hold nothing")


async def test_media_port_zero_keeps_a_port_per_connection(tmp_path):
    from tests.server import start_server
    server, runner = await start_server(str(tmp_path / "data"), media_port=0)
    try:
        assert server.core.media_port is None
        await server.create_room("ports", "pw-123456")
        publisher = await Client.join(server.url, await server.mint("ports", "participant", "OR"))
        viewer = await Client.join(server.url, await server.mint("ports", "participant", "Trainee"))
        try:
            track = await viewer.subscribe(await publisher.publish(PatternTrack(), "camera"))
            await frames(track, 5)
            ports = {server_ice(server, "ports", c.peer_id)._nominated[1].local_addr[1] for c in (publisher, viewer)}
            assert len(ports) == 2
        finally:
            await viewer.close()
            await publisher.close()
    finally:
        await runner.cleanup()


def test_a_taken_media_port_is_a_clear_error(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from tests.server import free_media_port, free_port
    taken = free_media_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", taken))
        root = Path(__file__).resolve().parents[1]
        done = subprocess.run(
            [sys.executable, "-m", "signaling", "serve", "--host", "127.0.0.1", "--port", str(free_port()),
             "--ice-hosts", "127.0.0.1", "--media-port", str(taken), "--data-dir", str(tmp_path / "data")],
            cwd=root, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode != 0
    assert done.stderr.splitlines()[-1].startswith(f"telemed: cannot start: media port {taken} (UDP and TCP) "
                                                   "on 127.0.0.1: Address already in use; choose another")


async def test_ice_tcp_refuses_garbage_and_unknown_ufrags(server):
    media_port = server.core.media_port
    before = (media_port.counters.garbage, media_port.counters.unknown_ufrag)
    for frame, reason in ((b"\x16\xfe\xfd" + bytes(40), "garbage"),
                          (binding_request("nosuch:peer"), "unknown_ufrag")):
        reader, writer = await asyncio.open_connection("127.0.0.1", media_port.port)
        writer.write(len(frame).to_bytes(2, "big") + frame)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed without a word
        writer.close()
    assert (media_port.counters.garbage, media_port.counters.unknown_ufrag) == (before[0] + 1, before[1] + 1)
    await until(lambda: media_port.entries() == 0, what="the refused links to go")


async def test_consent_is_checked_from_one_timer(server, monkeypatch):
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.5)  # expiry after 3 s without answers
    media_port = server.core.media_port
    await server.create_room("consent", "pw-123456")
    publisher = await Client.join(server.url, await server.mint("consent", "participant", "OR"))
    viewer = await Client.join(server.url, await server.mint("consent", "participant", "Trainee"))
    try:
        track = await viewer.subscribe(await publisher.publish(ToneTrack(), "microphone"))
        await frames(track, 5)
        sent = media_port.consent.checks_sent
        # Well past the expiry, both peers answered every check and are still connected.
        await until(lambda: media_port.consent.checks_sent >= sent + 8, what="consent checks")
        room = server.core.live.rooms["consent"]
        assert all(p.connection.pc.connectionState == "connected" for p in room.peers.values())
        assert media_port.consent.expired == 0 and len(media_port.consent) == 2
        # No server connection keeps a consent task of its own (the clients' aioice do).
        ours = {id(server_ice(server, "consent", c.peer_id)) for c in (publisher, viewer)}
        consent_tasks = [t.get_coro() for t in asyncio.all_tasks() if "query_consent" in repr(t.get_coro())]
        assert len(consent_tasks) == 2
        assert not [c for c in consent_tasks if id(c.cr_frame.f_locals.get("self")) in ours]
        await frames(track, 5)
    finally:
        await viewer.close()
        await publisher.close()


async def test_a_full_receive_buffer_is_counted():
    """Datagrams the kernel drops because the loop did not read in time are counted
    (telemed_media_port_dropped_total{reason="receive_buffer_full"})."""
    from sfu.media_port import MediaPort

    port = await MediaPort.open(["127.0.0.1"], 0, tcp=False)
    try:
        sock = port.sockets[0].sock
        address = sock.getsockname()
        assert port.receive_buffer_drops() == 0
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # a small one fills fast
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            # The loop does not run meanwhile, so nothing is read: the buffer fills.
            buffered = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            for _ in range(2 * buffered // 1024):
                sender.sendto(b"\xff" * 1024, address)
        assert port.receive_buffer_drops() > 0
    finally:
        port.close()
