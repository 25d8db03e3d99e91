"""Browser WHIP/WHEP libraries nobody here wrote (medooze's `whip-whep` from npm, vendored
in clients/web/vendor), on pages served by another web server on another port: the
preflight and CORS headers (RFC 9725 §4.6, `whip_origins`) must let them publish, trickle,
watch and hang up, and must stop a page whose origin is not allowed."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web

from tests.polling import until
from tests.server import free_port, start_server

from .conftest import ROOT, wait_for

PAGES = Path(__file__).resolve().parent / "cross_origin"
LIBRARY = ROOT / "clients" / "web" / "vendor" / "node_modules" / "whip-whep"
PASSWORD = "pw-123456"

# The player's <video> shows frames, and keeps showing new ones.
FRAMES = "() => { const v = document.getElementById('player'); return v.videoWidth ? v.getVideoPlaybackQuality().totalVideoFrames : 0; }"


@pytest.fixture
def library() -> Path:
    if not (LIBRARY / "whip.js").exists():
        pytest.fail("whip-whep is not installed: run scripts/bootstrap.sh (npm ci in clients/web/vendor)")
    return LIBRARY


async def serve_pages(port: int, library: Path) -> web.AppRunner:
    """Another site: the test pages and the library, nothing of the telemed server."""
    app = web.Application()
    app.router.add_static("/vendor/whip-whep/", library)
    app.router.add_static("/", PAGES)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def page_url(origin: str, page: str, endpoint: str, token: str) -> str:
    return f"{origin}/{page}#url={quote(endpoint, safe='')}&token={quote(token, safe='')}"


async def test_npm_whip_client_and_whep_player_from_another_origin(tmp_path, people, library, screenshots):
    page_port = free_port()
    site = f"http://127.0.0.1:{page_port}"
    # TURN credentials too, to see the library take them from our Link headers (nothing
    # listens on that port: the connection itself goes host to host on loopback).
    server, runner = await start_server(str(tmp_path / "data"), whip_origins=[site],
                                        turn_urls=["turn:127.0.0.1:9?transport=tcp"],
                                        turn_secret="a-secret-shared-with-a-turn-server")
    pages = await serve_pages(page_port, library)
    try:
        await server.create_room("or-7", PASSWORD)
        publisher = await people("encoder")
        calls: list[tuple[str, int]] = []  # (method, status) of the library's requests to the server
        publisher.context.on("response", lambda r: r.url.startswith(server.url) and calls.append((r.request.method, r.status)))
        encoder = await publisher.page(page_url(
            site, "publish.html", f"{server.url}/whip/or-7", await server.mint("or-7", "device", "OR 7 camera")))
        assert await encoder.evaluate("window.outcome") == "published"
        await wait_for(encoder, "window.pc.connectionState === 'connected'")
        (ice_server,) = await encoder.evaluate("window.pc.getConfiguration().iceServers")
        assert ice_server["urls"] == ["turn:127.0.0.1:9?transport=tcp"]
        assert ice_server["username"].split(":")[0].isdigit() and ice_server["credential"]
        # It trickles its candidates with PATCH (If-Match, across origins) after the 201.
        await until(lambda: ("PATCH", 204) in calls)
        assert calls[0] == ("POST", 201) and all(status < 400 for _, status in calls), calls

        player = await (await people("lecture hall")).page(page_url(
            site, "play.html", f"{server.url}/whep/or-7", await server.mint("or-7", "viewer", "Hall 2")))
        assert await player.evaluate("window.outcome") == "viewing"
        first = await wait_for(player, FRAMES)
        await wait_for(player, f"() => ({FRAMES})() > {first}")
        assert await player.evaluate("document.getElementById('player').videoWidth") == 640
        await player.screenshot(path=screenshots / "interop-npm-whep-player.png")

        # The same pages from an origin the server does not list: refused at the preflight.
        stranger = await (await people("stranger")).page(page_url(
            f"http://localhost:{page_port}", "play.html", f"{server.url}/whep/or-7",
            await server.mint("or-7", "viewer", "Elsewhere")))
        assert await stranger.evaluate("window.outcome") == "error: Failed to fetch"  # the CORS refusal

        # Hanging up: the library's DELETE, across origins, ends the publisher's session.
        await encoder.evaluate("window.whip.stop()")
        room = server.core.live.rooms.get("or-7")
        await until(lambda: room is None or not room.router.producers)
        assert calls[-1] == ("DELETE", 200), calls
    finally:
        await pages.cleanup()
        await runner.cleanup()
