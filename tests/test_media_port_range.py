"""The media port range (sfu/port_range.py, `--media-port 0 --media-port-range LOW-HIGH`):
every connection's UDP socket on a free port of the range, a clear refusal when the range
is full while the others carry on, ports back when connections close."""

from __future__ import annotations

import errno
import logging
import random
import socket

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from signaling import config
from signaling.cli import build_parser
from sfu.port_range import PortRange, PortRangeExhausted
from telemed_client import Client, ClientError
from tests.media import PatternTrack, ToneTrack
from tests.server import start_server
from tests.test_forwarding import frames
from tests.test_media_port import server_ice, udp_ports_of_this_process, until


def free_udp_range(size: int) -> PortRange:
    """`size` ports all free on 127.0.0.1 now, below the ephemeral range (32768 on), so
    that the clients' own sockets, which aioice binds on port 0, never land in it."""
    rng = random.Random()
    for _ in range(200):
        low = rng.randrange(20000, 32000 - size)
        held = []
        try:
            for port in range(low, low + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return PortRange(low, low + size - 1)
    raise AssertionError("no free block of UDP ports")


def held_in(ports: PortRange) -> set[int]:
    """The ports of the range that UDP sockets of this process hold, as `ss` sees them."""
    return {port for host, port in udp_ports_of_this_process() if port in ports}


def server_ports(server, room: str, peer_id: str) -> set[int]:
    """The ports of the server's media sockets for one peer."""
    return {p.transport.get_extra_info("sockname")[1] for p in server_ice(server, room, peer_id)._protocols}


# --- the setting ---

def settings_from(*flags: str, environ: dict[str, str] | None = None) -> config.Settings:
    return config.load(build_parser().parse_args(["serve", *flags]), environ or {})


def test_the_setting_is_checked():
    assert settings_from("--media-port", "0", "--media-port-range", "20000-20999").media_port_range == (20000, 20999)
    assert settings_from("--media-port", "0", environ={"TELEMED_MEDIA_PORT_RANGE": " 50000 - 50000 "}
                         ).media_port_range == (50000, 50000)
    assert settings_from("--media-port", "0").media_port_range is None
    assert settings_from("--media-port", "0", environ={"TELEMED_MEDIA_PORT_RANGE": ""}).media_port_range is None
    for bad, says in (("40000", "must be LOW-HIGH, e.g. 20000-20999"),
                      ("40000-", "must be LOW-HIGH, e.g. 20000-20999"),
                      ("a-b", "must be LOW-HIGH, e.g. 20000-20999"),
                      ("40000:40999", "must be LOW-HIGH, e.g. 20000-20999"),
                      ("40999-40000", "must be LOW-HIGH with 1024 <= LOW <= HIGH <= 65535, not 40999-40000"),
                      ("80-1100", "must be LOW-HIGH with 1024 <= LOW <= HIGH <= 65535, not 80-1100"),
                      ("60000-70000", "must be LOW-HIGH with 1024 <= LOW <= HIGH <= 65535, not 60000-70000")):
        with pytest.raises(ValueError) as refused:
            settings_from("--media-port", "0", "--media-port-range", bad)
        assert str(refused.value) == f"media_port_range: media_port_range {says}"


def test_a_range_with_the_one_port_mode_is_refused_at_start():
    """A firewall opened for the range would block the one port in use: refuse, never ignore."""
    for flags in (("--media-port-range", "20000-20999"),  # the default media port, 40000
                  ("--media-port", "3478", "--media-port-range", "20000-20999")):
        with pytest.raises(ValueError, match=r"media_port_range 20000-20999 applies only with media_port 0 "
                                             r"\(a port per connection\), but media_port is \d+ .*set "
                                             r"--media-port 0 to use the range, or drop the range"):
            settings_from(*flags)


# --- the mechanism ---

def test_binding_walks_the_range_skips_taken_ports_and_gets_them_back():
    ports = free_udp_range(4)
    foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    foreign.bind(("127.0.0.1", ports.low + 1))  # someone else's
    ours = []
    try:
        for _ in range(3):
            ours.append(ports.bind("127.0.0.1"))
        bound = {s.getsockname()[1] for s in ours}
        assert bound == set(range(ports.low, ports.high + 1)) - {ports.low + 1}
        with pytest.raises(PortRangeExhausted) as exhausted:
            ports.bind("127.0.0.1")
        assert exhausted.value.errno == errno.EADDRINUSE
        assert str(exhausted.value) == f"[Errno {errno.EADDRINUSE}] no free UDP port in the media port range {ports} on 127.0.0.1"
        closed = ours.pop()
        freed = closed.getsockname()[1]
        closed.close()
        ours.append(ports.bind("127.0.0.1"))
        assert ours[-1].getsockname()[1] == freed  # the one port free again
    finally:
        foreign.close()
        for sock in ours:
            sock.close()


# --- servers ---

@pytest.fixture
async def ranged(tmp_path):
    """A server with a port per connection in a range of three, one of them held by
    someone else: room for two connections."""
    ports = free_udp_range(3)
    foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    foreign.bind(("127.0.0.1", ports.low + 1))
    server, runner = await start_server(str(tmp_path / "data"), media_port=0, media_port_range=(ports.low, ports.high))
    try:
        yield server, ports, foreign.getsockname()[1]
    finally:
        await runner.cleanup()
        foreign.close()


async def test_a_full_range_refuses_newcomers_clearly_while_the_others_carry_on(ranged, caplog):
    server, ports, foreign = ranged
    assert server.core.media_port is None and server.core.port_range == ports
    await server.create_room("ranged", "pw-123456")
    publisher = await Client.join(server.url, await server.mint("ranged", "participant", "OR"))
    viewer = await Client.join(server.url, await server.mint("ranged", "participant", "Trainee"))
    late = await Client.join(server.url, await server.mint("ranged", "participant", "Late"), auto_resume=False)
    try:
        video = await publisher.publish(PatternTrack(), "camera")
        track = await viewer.subscribe(video)
        await frames(track, 5)
        publisher_ports = server_ports(server, "ranged", publisher.peer_id)
        used = publisher_ports | server_ports(server, "ranged", viewer.peer_id)
        assert len(used) == 2 and used <= set(range(ports.low, ports.high + 1)) - {foreign}
        for client in (publisher, viewer):  # the pair in use ends at the server's port in the range
            assert server_ice(server, "ranged", client.peer_id)._nominated[1].local_addr[1] in used
        assert held_in(ports) == used | {foreign}  # the sockets themselves, as ss lists them
        # The range is full: the newcomer's offer gets a clear refusal, and it is logged.
        with caplog.at_level(logging.WARNING, logger="telemed.sfu.connection"):
            with pytest.raises(ClientError) as refused:
                await late.subscribe(video)
        assert str(refused.value) == "media-ports-exhausted: the server has no free media port now; try again shortly"
        assert f"connection refused: no free UDP port in the media port range {ports} on 127.0.0.1\n" in caplog.text
        assert "telemed_media_port_range_refused_total 1.0" in server.core.metrics.render()
        assert server.core.live.rooms["ranged"].peers[late.peer_id].connection is None  # nothing half-made kept
        # WHIP gets the same refusal as a 503.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            pc.addTransceiver(ToneTrack(), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{server.url}/whip/ranged", data=pc.localDescription.sdp, headers={
                        "Authorization": f"Bearer {await server.mint('ranged', 'device', 'Cart')}",
                        "Content-Type": "application/sdp"}) as r:
                    assert (r.status, (await r.json())["code"]) == (503, "media-ports-exhausted")
            assert server.core.port_range.exhausted == 2
        finally:
            await pc.close()
        # The others carry on, on the ports they had.
        await frames(track, 10)
        assert held_in(ports) == used | {foreign}
        # A port comes back when its connection closes, and the refused peer's next offer,
        # on a new connection, gets it.
        await viewer.close()
        await until(lambda: held_in(ports) == publisher_ports | {foreign}, what="the viewer's port to be freed")
        await late.negotiate()
        assert server_ports(server, "ranged", late.peer_id) == used - publisher_ports
        await frames(next(t for t in late.pc.getTransceivers() if t.mid in late._subscribe).receiver.track, 5)
    finally:
        await late.close()
        await viewer.close()
        await publisher.close()


async def test_churn_never_leaks_a_port(tmp_path):
    """Room for two connections: an anchor and one guest at a time. A port that a guest's
    connection kept would refuse the next guest."""
    ports = free_udp_range(2)
    server, runner = await start_server(str(tmp_path / "data"), media_port=0, media_port_range=(ports.low, ports.high))
    try:
        await server.create_room("churn-range", "pw-123456")
        anchor = await Client.join(server.url, await server.mint("churn-range", "participant", "Anchor"))
        try:
            video = await anchor.publish(PatternTrack(), "camera")
            anchor_ports = server_ports(server, "churn-range", anchor.peer_id)
            for cycle in range(8):
                # Vanishing means gone: a client that resumed would hold a new connection on purpose.
                guest = await Client.join(server.url, await server.mint("churn-range", "participant", f"G{cycle}"),
                                          auto_resume=False)
                await frames(await guest.subscribe(video), 2)
                assert held_in(ports) == {ports.low, ports.high}
                if cycle % 2:
                    await guest.pc.close()  # vanish without 'leave'
                    await guest._ws.close()
                    await guest._session.close()
                else:
                    await guest.close()
                await until(lambda: held_in(ports) == anchor_ports, what=f"guest {cycle}'s port to be freed")
            assert server_ports(server, "churn-range", anchor.peer_id) == anchor_ports
            late = await Client.join(server.url, await server.mint("churn-range", "participant", "Late"))
            try:
                await frames(await late.subscribe(video), 2)
            finally:
                await late.close()
        finally:
            await anchor.close()
        await until(lambda: held_in(ports) == set(), what="every port to be freed")
    finally:
        await runner.cleanup()


async def test_each_server_keeps_its_own_range(tmp_path):
    """The range belongs to the server: two in one process (as in tests) each bind in theirs."""
    first_ports, second_ports = free_udp_range(2), free_udp_range(2)
    while set(range(first_ports.low, first_ports.high + 1)) & set(range(second_ports.low, second_ports.high + 1)):
        second_ports = free_udp_range(2)
    first, first_runner = await start_server(str(tmp_path / "one"), media_port=0,
                                             media_port_range=(first_ports.low, first_ports.high))
    second, second_runner = await start_server(str(tmp_path / "two"), media_port=0,
                                               media_port_range=(second_ports.low, second_ports.high))
    try:
        clients = []
        for server, ports in ((first, first_ports), (second, second_ports)):
            await server.create_room("own", "pw-123456")
            client = await Client.join(server.url, await server.mint("own", "participant", "OR"))
            clients.append(client)
            await client.publish(ToneTrack(), "microphone")
            assert server_ports(server, "own", client.peer_id) <= set(range(ports.low, ports.high + 1))
        for client in clients:
            await client.close()
    finally:
        await second_runner.cleanup()
        await first_runner.cleanup()


def test_doctor_warns_of_a_range_among_the_ephemeral_ports(tmp_path):
    from signaling.doctor import EPHEMERAL_PORTS, media_ports

    first, last = (int(v) for v in EPHEMERAL_PORTS.read_text().split())
    inside = config.Settings(media_port=0, media_port_range=(last - 10, last), data_dir=str(tmp_path))
    [finding] = media_ports(inside)
    assert (finding.status, finding.check) == ("warn", "media")
    assert finding.detail.startswith(f"the media port range {last - 10}-{last} overlaps the system's ephemeral "
                                     f"ports {first}-{last}")
    outside = config.Settings(media_port=0, media_port_range=(first - 100, first - 1), data_dir=str(tmp_path))
    assert [(f.status, f.detail) for f in media_ports(outside)] == [
        ("ok", f"the media port range {first - 100}-{first - 1} (100 ports) is outside the ephemeral ports {first}-{last}")]
    assert list(media_ports(config.Settings(media_port=0, data_dir=str(tmp_path)))) == []
