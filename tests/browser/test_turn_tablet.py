"""The ambulance's tablet behind a firewall that drops all its UDP, and all TCP but HTTP
and TURN: Chromium runs in the client namespace (tests/turn_setup.py), opens the consult
page from the server's veth address, and takes the TURN credentials from `joined`; only
TURN over TCP gets through. Video flows both ways."""

from __future__ import annotations

import os

import pytest
import pytest_asyncio
from telemed_client import Client

from tests.media import PatternTrack
from tests.test_forwarding import frames
from tests.turn_setup import coturn, network, tls_files, turn_server  # noqa: F401 (fixtures)

from .conftest import TABLET_LANDSCAPE, Person, chromium_in, remote_videos_playing, wait_connected

PASSWORD = "pw-123456"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and nftables need root")


@pytest_asyncio.fixture
async def tablet_browser(tmp_path, network, turn_server):
    origin = turn_server.url.replace("127.0.0.1", network.host_ip)
    async with chromium_in(network, origin, tmp_path) as chromium:
        yield chromium, origin


async def test_tablet_consult_over_turn_tcp_with_udp_blocked(tablet_browser, network, turn_server, coturn):
    chromium, origin = tablet_browser
    # All UDP (TURN over UDP fails too), and TCP but to HTTP and TURN (no ICE-TCP straight to
    # the media port): TURN over TCP is what is left.
    network.block(tcp_ports=(int(turn_server.url.rsplit(":", 1)[1]), coturn.port, coturn.tls_port))
    await turn_server.create_room("msu-3", PASSWORD)
    doctor = await Client.join(turn_server.url, await turn_server.token("msu-3", PASSWORD, name="Stroke centre"))
    context = await chromium.new_context(viewport=TABLET_LANDSCAPE, has_touch=True)
    tablet = Person(context, "tablet")
    try:
        await doctor.publish(PatternTrack(), "camera")
        token = await turn_server.token("msu-3", PASSWORD, name="Paramedic")
        page = await tablet.page(f"{origin}/room.html?room=msu-3&quality=sd#token={token}")
        await wait_connected(page, timeout=45)
        await remote_videos_playing(page, 1)  # the doctor's camera, relayed to the tablet

        published = await doctor.wait_event("track-published", timeout=30,
                                            match=lambda e: e["track"]["kind"] == "video" and e["track"]["peer_id"] != doctor.peer_id)
        video = await doctor.subscribe(published["track"]["id"])
        assert (await frames(video, 5))[-1].width > 0  # the tablet's camera, relayed out
        selected = await page.evaluate("""async () => {
          const stats = await window.telemed.session.pc.getStats();
          for (const s of stats.values()) {
            if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
              const local = stats.get(s.localCandidateId);
              return {type: local.candidateType, relayProtocol: local.relayProtocol};
            }
          }
          return null;
        }""")
        assert selected == {"type": "relay", "relayProtocol": "tcp"}, selected
        assert network.dropped_udp() > 0  # it did try UDP, and the firewall dropped it
        assert not tablet.errors, tablet.errors
    finally:
        await context.close()
        await doctor.close()
