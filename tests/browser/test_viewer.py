"""Trainee viewer: receives the room, never asks for a camera, cannot publish."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import remote_videos_playing, room_url, wait_connected

ROOM = "teaching-1"
PASSWORD = "teach-pass"

# Counted across page loads: the lobby and the viewer page must both leave the camera alone.
COUNT_GET_USER_MEDIA = """
if (navigator.mediaDevices) {
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (...args) => {
    sessionStorage.setItem('gum', String(Number(sessionStorage.getItem('gum') || 0) + 1));
    return original(...args);
  };
}
"""

TRY_TO_PUBLISH = """async () => {
  const canvas = document.createElement('canvas');
  canvas.width = 320; canvas.height = 180;
  canvas.getContext('2d').fillRect(0, 0, 320, 180);
  const track = canvas.captureStream(5).getVideoTracks()[0];
  try {
    await window.telemed.session.publish('camera', track, 'not allowed');
    return {published: true};
  } catch (err) {
    return {published: false, code: err.code, message: err.message};
  }
}"""


async def test_viewer_plays_media_and_cannot_publish(server, people, screenshots):
    await server.create_room(ROOM, PASSWORD)
    surgeon = await (await people("surgeon")).page(room_url(server, ROOM, await server.token(ROOM, PASSWORD, "host", "Dr. Surgeon Adeyemi")))
    await wait_connected(surgeon)
    await surgeon.click('#layout-picker button[data-preset="speaker"]')

    # The trainee follows a viewer link to the lobby and signs in there.
    trainee = await people("trainee", init_script=COUNT_GET_USER_MEDIA)
    viewer = await trainee.page(f"{server.url}/?room={ROOM}&role=viewer")
    await expect(viewer.locator("#devices")).to_be_hidden()
    await viewer.fill("#name", "Trainee Kim")
    await viewer.fill("#password", PASSWORD)
    await viewer.click("#join-btn")
    await viewer.wait_for_url(f"**/viewer.html?room={ROOM}")
    await wait_connected(viewer)
    await remote_videos_playing(viewer, 1)
    await expect(viewer.locator("#stage")).to_have_attribute("data-layout", "speaker")
    await viewer.wait_for_function("() => document.querySelectorAll('#audio-sink audio').length >= 1")
    assert await viewer.evaluate("[...document.querySelectorAll('#audio-sink audio')].some(a => !a.paused)")

    assert await viewer.evaluate("sessionStorage.getItem('gum')") is None, "a trainee must never be asked for camera or microphone"
    for control in ("#ctl-mic", "#ctl-cam", "#ctl-share", "#layout-picker"):
        await expect(viewer.locator(control)).to_have_count(0)
    await expect(surgeon.locator("#people-count")).to_contain_text("1 watching")

    # Even a page that tries anyway is refused by the server.
    result = await viewer.evaluate(TRY_TO_PUBLISH)
    assert result["published"] is False
    assert result["code"] == "forbidden", result
    viewer_peer = await viewer.evaluate("window.telemed.session.me.peer_id")
    live = server.core.live.rooms[ROOM]
    assert all(p.appdata.get("peer_id") != viewer_peer for p in live.router.producers.values())

    # The refusal costs the viewer nothing: still connected, still playing.
    assert await viewer.evaluate("window.telemed.session.status") == "connected"
    await remote_videos_playing(viewer, 1)
    await viewer.screenshot(path=screenshots / "viewer.png")
