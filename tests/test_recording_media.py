"""Serving a real recording for replay: its tracks decrypted with Range requests,
signed links, refusals, audit, and the session-log entries it covers."""

from __future__ import annotations

import json
from pathlib import Path
import time

import aiohttp

from conference.signed_urls import UrlSigner
from signaling.config import reveal
from tests.clinical_peers import PASSWORD, close, join, potassium
from tests.disk_files import file_contents
from tests.test_recording import frames_written, publisher, until
from vault import EncryptedReader

ROOM = "replay-room"


async def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers or {}) as response:
        return response.status, dict(response.headers), await response.read()


async def post(server, path: str, token: str) -> dict:
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.url}/api/rooms/{ROOM}/recordings{path}", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status in (200, 201), await r.text()
        return (await r.json())["recording"]


async def record(server, host: str, seconds_of_video: int = 2, during=None, codec: str | None = None) -> dict:
    """A real recording of an aiortc publisher's camera and microphone; ``during()`` runs
    once the first ``seconds_of_video`` are recorded (share a lab, change the layout),
    and as many follow it. The manifest."""
    pub = await publisher(server, ROOM, codec)
    try:
        recording = await post(server, "", host)
        frames = 30 * seconds_of_video
        await until(lambda: frames_written(server, ROOM).get("video", 0) >= frames, what="video recorded")
        if during is not None:
            await during()
        more = frames_written(server, ROOM).get("video", 0) + frames
        await until(lambda: frames_written(server, ROOM).get("video", 0) >= more, what="more video")
        return await post(server, f"/{recording['id']}/stop", host)
    finally:
        await pub.close()


async def share_lab(server, dicom: bytes | None = None) -> None:
    """A participant shares a lab result (and an image, if given) and leaves."""
    sharer = await join(server, ROOM, "Dr. Lab")
    try:
        if dicom is not None:
            await sharer.send_dicom(dicom, "ct.dcm")
        await sharer.send_fhir(potassium(6.4))
    finally:
        await close(sharer)


def plaintext(server, recording_id: str, track: dict) -> bytes:
    path = server.core.recordings.root / recording_id / track["file"]
    with EncryptedReader(path, server.core.keyring) as reader:
        return reader.read_at(0, reader.size)


def audit_records(server) -> list[dict]:
    path = server.core.clinical.root / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_tracks_served_with_ranges_links_audit_and_clinical_entries(server):
    await server.create_room(ROOM, PASSWORD)
    host = await server.mint(ROOM, "host", "Dr. Host", identity="host-7")
    stopped = await record(server, host, during=lambda: share_lab(server))
    base = f"{server.url}/api/rooms/{ROOM}/recordings/{stopped['id']}"
    status, _, body = await get(base, {"Authorization": f"Bearer {host}"})
    assert status == 200
    manifest = json.loads(body)
    assert manifest["links_expire_in"] == server.core.settings.recording_link_ttl
    assert {t["kind"] for t in manifest["tracks"]} == {"video", "audio"}

    # The lab shared during the recording is on disk only sealed (session log), never in the clear.
    for path, content in file_contents(Path(server.core.settings.data_dir)).items():
        assert b"Potassium" not in content, path

    for track in manifest["tracks"]:
        plain, url = plaintext(server, manifest["id"], track), server.url + track["url"]
        size = len(plain)
        assert size > 2048

        status, headers, body = await get(url)
        assert status == 200 and body == plain
        assert headers["Accept-Ranges"] == "bytes"
        assert headers["Content-Type"] == f"{track['kind']}/webm"
        assert headers["Cache-Control"] == "private, no-store"

        middle = size // 2
        for header, start, stop in ((f"bytes={middle}-{middle + 999}", middle, middle + 1000),
                                    (f"bytes={size - 10}-", size - 10, size), ("bytes=-100", size - 100, size),
                                    (f"bytes=5-{size + 50}", 5, size)):
            status, headers, body = await get(url, {"Range": header})
            assert status == 206, header
            assert body == plain[start:stop], header
            assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
            assert int(headers["Content-Length"]) == stop - start

        status, headers, body = await get(url, {"Range": f"bytes={size}-"})
        assert status == 416
        assert headers["Content-Range"] == f"bytes */{size}"
        assert json.loads(body)["code"] == "range-not-satisfiable"
        status, _, body = await get(url, {"Range": "bytes=9-2"})  # malformed: ignored
        assert status == 200 and body == plain
        async with aiohttp.ClientSession() as http, http.head(url, headers={"Range": "bytes=0-9"}) as r:
            assert r.status == 206 and r.headers["Content-Length"] == "10" and await r.read() == b""

    # Each link is audited once, however many Range requests the player makes.
    opens = [r for r in audit_records(server) if r["action"] == "recording-open"]
    assert [r["details"]["what"] for r in opens].count(f"track {manifest['tracks'][0]['id']}") == 1
    assert {r["actor"]["identity"] for r in opens} == {"host-7"}
    assert "manifest" in [r["details"]["what"] for r in opens]

    # Fresh links for a player whose links expired; an expired one is refused.
    status, _, body = await get(base + "/links", {"Authorization": f"Bearer {host}"})
    assert status == 200 and set(json.loads(body)["tracks"]) == {t["id"] for t in manifest["tracks"]}
    track = manifest["tracks"][0]["id"]
    past = UrlSigner(reveal(server.core.settings.secret), ttl=60, clock=lambda: time.time() - 3600)
    query = past.query(ROOM, f"recording/{manifest['id']}/{track}", "host-7")
    status, _, body = await get(f"{base}/tracks/{track}?{query}")
    assert status == 403 and "expired" in json.loads(body)["error"]
    # A link opens only the track it names.
    other = manifest["tracks"][1]["id"]
    link = manifest["tracks"][0]["url"]
    status, _, _ = await get(server.url + link.replace(f"/tracks/{track}", f"/tracks/{other}"))
    assert status == 403

    # The lab shared while recording, with the state before it.
    status, _, body = await get(base + "/clinical", {"Authorization": f"Bearer {host}"})
    reply = json.loads(body)
    assert status == 200 and reply["to_seq"] >= reply["from_seq"]
    labs = [e for e in reply["entries"] if e["kind"] == "lab"]
    assert labs[0]["seq"] >= reply["from_seq"] and labs[0]["body"]["results"][0]["loinc"] == "2823-3"
    assert [e for e in manifest["events"] if e["type"] == "clinical" and e["seq"] == labs[0]["seq"]]


async def test_refused_without_credentials_or_with_a_wrong_role(server):
    await server.create_room(ROOM, PASSWORD)
    host = await server.token(ROOM, PASSWORD, "host", "Dr. Host")
    participant = await server.token(ROOM, PASSWORD, "participant", "Dr. P")
    viewer = await server.token(ROOM, PASSWORD, "viewer", "Trainee")
    await server.create_room("elsewhere", PASSWORD)
    stranger = await server.token("elsewhere", PASSWORD, "host", "Dr. Elsewhere")
    stopped = await record(server, host, seconds_of_video=1)
    track = stopped["tracks"][0]["id"]
    base = f"{server.url}/api/rooms/{ROOM}/recordings/{stopped['id']}"

    for path in ("", "/links", f"/tracks/{track}", "/clinical", "/ecg/1"):
        status, _, body = await get(base + path)
        assert status == 401 and json.loads(body)["code"] == "unauthorized", path
        for token in (participant, viewer, stranger):
            status, _, body = await get(base + path, {"Authorization": f"Bearer {token}"})
            assert status == 403 and json.loads(body)["code"] == "forbidden", path
    status, _, body = await get(f"{base}/tracks/{track}?who=x&exp=99999999999&sig=00")
    assert status == 403 and "signature" in json.loads(body)["error"]
    # Unknown recording, track or ECG stream: 404, never a 500. The admin key opens.
    auth = {"Authorization": f"Bearer {host}"}
    assert (await get(f"{server.url}/api/rooms/{ROOM}/recordings/0123456789abcdef/links", auth))[0] == 404
    assert (await get(f"{base}/tracks/nope", auth))[0] == 404
    assert (await get(f"{base}/ecg/1", auth))[0] == 404
    assert (await get(f"{base}/tracks/{track}", {"Authorization": f"Bearer {server.admin_key}"}))[0] == 200
