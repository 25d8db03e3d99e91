"""Serving a recording for replay: its tracks decrypted with Range requests, signed
links, refusals, audit, and the session-log entries it covers."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from conference.signed_urls import UrlSigner
from tests.clinical_peers import PASSWORD, close, join, potassium
from tests.recording_files import Shelf

ROOM = "replay-room"


@pytest.fixture
async def shelf(server, tmp_path):
    await server.create_room(ROOM, PASSWORD)
    shelf = Shelf(tmp_path / "recordings", server.core.keyring)
    server.core.recordings = shelf
    return shelf


async def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers or {}) as response:
        return response.status, dict(response.headers), await response.read()


async def links_for(server, recording_id: str, token: str) -> dict[str, str]:
    status, _, body = await get(f"{server.url}/api/rooms/{ROOM}/recordings/{recording_id}/links",
                                {"Authorization": f"Bearer {token}"})
    assert status == 200, body
    return {k: server.url + v for k, v in json.loads(body)["tracks"].items()}


def audit_records(server) -> list[dict]:
    path = server.core.clinical.root / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_range_requests_return_the_decrypted_bytes(server, shelf):
    manifest = shelf.add(ROOM)
    host = await server.token(ROOM, PASSWORD, "host", "Dr. Host", identity="host-1")
    links = await links_for(server, manifest["id"], host)
    for track in manifest["tracks"]:
        plain, url = shelf.plain[track["id"]], links[track["id"]]
        size = len(plain)
        assert size > 20_000  # several 16 KiB vault chunks

        status, headers, body = await get(url)
        assert status == 200 and body == plain
        assert headers["Accept-Ranges"] == "bytes"
        assert headers["Content-Type"] == f"{track['kind']}/webm"

        # Across a chunk boundary, from an offset to the end, and a suffix.
        for header, start, stop in (("bytes=16000-17000", 16000, 17001), (f"bytes={size - 10}-", size - 10, size),
                                    ("bytes=-100", size - 100, size), (f"bytes=5-{size + 50}", 5, size)):
            status, headers, body = await get(url, {"Range": header})
            assert status == 206, header
            assert body == plain[start:stop], header
            assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/{size}"
            assert int(headers["Content-Length"]) == stop - start

        status, headers, body = await get(url, {"Range": f"bytes={size}-"})
        assert status == 416
        assert headers["Content-Range"] == f"bytes */{size}"
        assert json.loads(body)["code"] == "range-not-satisfiable"
        # A malformed Range is ignored: the whole file.
        status, _, body = await get(url, {"Range": "bytes=9-2"})
        assert status == 200 and body == plain


async def test_refused_without_credentials_or_with_a_wrong_role(server, shelf):
    manifest = shelf.add(ROOM)
    track = manifest["tracks"][0]["id"]
    base = f"{server.url}/api/rooms/{ROOM}/recordings/{manifest['id']}"
    participant = await server.token(ROOM, PASSWORD, "participant", "Dr. P")
    viewer = await server.token(ROOM, PASSWORD, "viewer", "Trainee")
    host = await server.token(ROOM, PASSWORD, "host", "Dr. Host")
    other_room = "elsewhere"
    await server.create_room(other_room, PASSWORD)
    stranger = await server.token(other_room, PASSWORD, "host", "Dr. Elsewhere")

    for path in ("/links", f"/tracks/{track}", "/clinical"):
        status, _, body = await get(base + path)
        assert status == 401 and json.loads(body)["code"] == "unauthorized"
        for token in (participant, viewer):
            status, _, body = await get(base + path, {"Authorization": f"Bearer {token}"})
            assert status == 403 and json.loads(body)["code"] == "forbidden", path
        status, _, _ = await get(base + path, {"Authorization": f"Bearer {stranger}"})
        assert status == 403

    link = (await links_for(server, manifest["id"], host))[track]
    tampered = link.replace("sig=", "sig=0")
    status, _, body = await get(tampered)
    assert status == 403 and "signature" in json.loads(body)["error"]
    # A link opens only the track it names.
    other = manifest["tracks"][1]["id"]
    status, _, _ = await get(link.replace(f"/tracks/{track}", f"/tracks/{other}"))
    assert status == 403
    # Unknown recording or track: 404, never a 500.
    status, _, _ = await get(f"{server.url}/api/rooms/{ROOM}/recordings/nope/links", {"Authorization": f"Bearer {host}"})
    assert status == 404
    status, _, _ = await get(f"{base}/tracks/nope", {"Authorization": f"Bearer {host}"})
    assert status == 404
    # The admin key opens it too.
    status, _, _ = await get(base + f"/tracks/{track}", {"Authorization": f"Bearer {server.admin_key}"})
    assert status == 200


async def test_expired_link_is_refused(server, shelf):
    manifest = shelf.add(ROOM)
    host = await server.token(ROOM, PASSWORD, "host", "Dr. Host")
    track = manifest["tracks"][0]["id"]
    assert (await get((await links_for(server, manifest["id"], host))[track]))[0] == 200
    # Signed with the server's secret, but an hour ago: a leaked link dies.
    past = UrlSigner(server.core.settings.secret, ttl=60, clock=lambda: time.time() - 3600)
    query = past.query(ROOM, f"recording/{manifest['id']}/{track}", "host-1")
    status, _, body = await get(f"{server.url}/api/rooms/{ROOM}/recordings/{manifest['id']}/tracks/{track}?{query}")
    assert status == 403 and "expired" in json.loads(body)["error"]


async def test_opens_are_audited_once_per_link(server, shelf):
    manifest = shelf.add(ROOM)
    host = await server.token(ROOM, PASSWORD, "host", "Dr. Host", identity="host-7")
    links = await links_for(server, manifest["id"], host)
    track, url = next(iter(links.items()))
    for header in ("bytes=0-99", "bytes=100-199", "bytes=200-"):
        assert (await get(url, {"Range": header}))[0] == 206
    records = audit_records(server)
    opened = [r for r in records if r["object"] == f"recording/{manifest['id']}/{track}"]
    assert len(opened) == 1
    assert opened[0]["actor"] == "host-7" and opened[0]["action"] == "open"
    assert opened[0]["details"]["via"] == "link"
    issued = [r for r in records if r["object"] == f"recording/{manifest['id']}"]
    assert issued and issued[0]["actor"] == "host-7" and issued[0]["details"]["what"] == "links"


async def test_clinical_entries_with_object_links(server, shelf):
    sharer = await join(server, ROOM, "Dr. Lab")
    try:
        await sharer.send_fhir(potassium(6.4))
    finally:
        await close(sharer)
    manifest = shelf.add(ROOM, session_log={"from_seq": 1, "to_seq": 1})
    host = await server.token(ROOM, PASSWORD, "host", "Dr. Host")
    status, _, body = await get(f"{server.url}/api/rooms/{ROOM}/recordings/{manifest['id']}/clinical",
                                {"Authorization": f"Bearer {host}"})
    assert status == 200
    reply = json.loads(body)
    assert [e["kind"] for e in reply["entries"]] == ["lab"]
    assert reply["entries"][0]["body"]["results"][0]["loinc"] == "2823-3"
