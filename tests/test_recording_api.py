"""The recordings REST API, its access rule and audit, the timeline, auto recording,
deletion, export and retention, over a real server and real aiortc peers."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import aiohttp
import av

from telemed_client import Client
from tests import clinical_peers
from tests.media import PatternTrack, ToneTrack
from tests.test_recording import PW, ROOT, api, until

BASE = "/api/rooms/{}/recordings"


def audit_entries(tmp_path) -> list[dict]:
    path = tmp_path / "data" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_only_a_host_or_the_admin_key_may_and_every_open_is_audited(server, tmp_path):
    await server.create_room("acl", PW)
    host = await Client.join(server.url, await server.mint("acl", "host", "Dr Host", "host-7"))
    participant = await server.token("acl", PW, role="participant")
    viewer = await server.token("acl", PW, role="viewer")
    await server.create_room("other", PW)
    other_host = await server.token("other", PW, role="host")
    try:
        for token, status in [(participant, 403), (viewer, 403), ("not-a-token", 401), (other_host, 403)]:
            got, body = await api(server, "POST", BASE.format("acl"), token)
            assert got == status and body["code"] in ("forbidden", "unauthorized"), (token[:10], got, body)
            got, body = await api(server, "GET", BASE.format("acl"), token)
            assert got == status
        got, body = await api(server, "POST", BASE.format("nope"))
        assert got == 404 and body["code"] == "not-found"
        got, body = await api(server, "POST", BASE.format("acl"), host.token)
        assert got == 201
        rec_id = body["recording"]["id"]
        got, body = await api(server, "POST", BASE.format("acl"), host.token)
        assert got == 409 and body["code"] == "recording"
        for token in (participant, viewer):
            got, _ = await api(server, "GET", BASE.format("acl") + f"/{rec_id}", token)
            assert got == 403
            got, _ = await api(server, "POST", BASE.format("acl") + f"/{rec_id}/stop", token)
            assert got == 403
        got, _ = await api(server, "GET", BASE.format("other") + f"/{rec_id}", other_host)
        assert got == 404  # a host of another room does not even learn it exists
        for bad in ("..%2F..%2Fkeys", "0123456789abcdef", "x" * 300):
            got, body = await api(server, "GET", BASE.format("acl") + f"/{bad}", host.token)
            assert got == 404 and body["code"] == "not-found"
        got, body = await api(server, "GET", BASE.format("acl") + f"/{rec_id}", host.token)
        assert got == 200 and body["id"] == rec_id and body["state"] == "recording"
        got, key = await api(server, "POST", "/api/keys", body={"name": "his"})
        got, body = await api(server, "GET", BASE.format("acl") + f"/{rec_id}", f"{key['key_id']}.{key['secret']}")
        assert got == 200 and body["id"] == rec_id  # a hospital system's API key
        got, body = await api(server, "DELETE", BASE.format("acl") + f"/{rec_id}", host.token)
        assert got == 409  # still running
        got, body = await api(server, "POST", BASE.format("acl") + f"/{rec_id}/stop", host.token)
        assert got == 200 and body["recording"]["state"] == "stopped"
        got, body = await api(server, "POST", BASE.format("acl") + f"/{rec_id}/stop", host.token)
        assert got == 409 and body["code"] == "not-recording"
    finally:
        await host.close()
    await server.core.audit.settled()
    actions = [(e["actor"]["identity"], e["action"], e["object"]) for e in audit_entries(tmp_path)]
    assert ("host-7", "recording-start", f"recording/{rec_id}") in actions
    assert ("host-7", "recording-open", f"recording/{rec_id}") in actions
    assert ("host-7", "recording-stop", f"recording/{rec_id}") in actions
    assert (f"apikey:{key['key_id']}", "recording-open", f"recording/{rec_id}") in actions


async def test_a_recordings_grant_opens_recordings_but_manages_nothing(server, tmp_path):
    await server.create_room("grant", PW)
    host = await Client.join(server.url, await server.mint("grant", "host", "Dr Host", "host-8"))
    try:
        got, body = await api(server, "POST", BASE.format("grant"), host.token)
        rec_id = body["recording"]["id"]
        # Only an operator (admin or API key) adds the grant; a password may not ask for it.
        got, body = await api(server, "POST", "/api/rooms/grant/token",
                              body={"role": "viewer", "identity": "reviewer-1", "recordings": True})
        assert got == 200 and body["grants"]["recordings"] is True and body["grants"]["admin"] is False
        reviewer = body["token"]
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/api/rooms/grant/token",
                                    json={"password": PW, "role": "viewer", "recordings": True}) as r:
                assert r.status == 403 and (await r.json())["code"] == "grant-not-allowed"
            async with session.post(f"{server.url}/api/rooms/grant/token",
                                    json={"password": PW, "role": "viewer", "recordings": "yes"}) as r:
                assert r.status == 400
        got, body = await api(server, "GET", BASE.format("grant"), reviewer)
        assert got == 200 and [r["id"] for r in body["recordings"]] == [rec_id]
        got, body = await api(server, "GET", BASE.format("grant") + f"/{rec_id}", reviewer)
        assert got == 200 and body["id"] == rec_id and all(t["url"] for t in body["tracks"])
        for method, path in (("POST", BASE.format("grant")), ("POST", BASE.format("grant") + f"/{rec_id}/stop"),
                             ("DELETE", BASE.format("grant") + f"/{rec_id}")):
            got, body = await api(server, method, path, reviewer)
            assert got == 403 and body["code"] == "forbidden", (method, path)
        got, body = await api(server, "POST", BASE.format("grant") + f"/{rec_id}/stop", host.token)
        assert got == 200
    finally:
        await host.close()
    await server.core.audit.settled()
    opens = [e for e in audit_entries(tmp_path) if e["action"] == "recording-open"]
    assert any(e["actor"]["identity"] == "reviewer-1" for e in opens)


async def test_the_timeline_holds_joins_mutes_layout_and_a_rejoin(server):
    await server.create_room("line", PW)
    host = await Client.join(server.url, await server.token("line", PW, role="host", name="Dr Host"))
    got, body = await api(server, "POST", BASE.format("line"), host.token)
    rec_id = body["recording"]["id"]
    late = await Client.join(server.url, await server.mint("line", "participant", "Dr Late", "late-1"))
    assert late.info["recording"]["id"] == rec_id and late.info["recording"]["by"] == "Dr Host"
    first_track = await late.publish(PatternTrack(), "camera")
    recordings = server.core.recordings
    await until(lambda: recordings.active("line")._tracks and all(
        t.file.frames > 10 for t in recordings.active("line")._tracks.values()), what="first track recorded")
    await late.send_raw(json.dumps({"type": "mute", "track_id": first_track, "muted": True}))
    await host.wait_event("track-updated")
    await host.set_layout({"preset": "speaker", "main_track": first_track})
    await host.wait_event("layout")
    await late.close()
    again = await Client.join(server.url, await server.mint("line", "participant", "Dr Late", "late-1"))
    second_track = await again.publish(PatternTrack(), "camera")
    await until(lambda: second_track in recordings.active("line")._tracks
                and recordings.active("line")._tracks[second_track].file.frames > 10, what="rejoin recorded")
    got, manifest = await api(server, "POST", BASE.format("line") + f"/{rec_id}/stop", host.token)
    manifest = manifest["recording"]
    await again.close()
    await host.close()
    kinds = [e["type"] for e in manifest["events"]]
    for kind in ("participant", "join", "track-published", "mute", "layout", "leave", "track-unpublished"):
        assert kind in kinds, (kind, kinds)
    assert [e["t"] for e in manifest["events"]] == sorted(e["t"] for e in manifest["events"])
    assert all("server_t" in e for e in manifest["events"])
    tracks = {t["id"]: t for t in manifest["tracks"]}
    assert set(tracks) == {first_track, second_track}  # one timeline across leave and rejoin
    assert tracks[first_track]["end"] <= tracks[second_track]["start"]
    assert tracks[second_track]["identity"] == "late-1" and tracks[second_track]["name"] == "Dr Late"
    assert manifest["session_log"]["from_seq"] >= 1 and "to_seq" in manifest["session_log"]
    assert manifest["started_at"].endswith("+00:00") and manifest["stopped_at"]


async def test_auto_records_from_first_publisher_to_last_leaver(server):
    await server.create_room("auto", PW, record="auto")
    pub = await Client.join(server.url, await server.token("auto", PW, name="Dr Pub"))
    assert pub.info["recording"] is None
    await pub.publish(PatternTrack(), "camera")
    await pub.publish(ToneTrack(), "microphone")
    notice = await pub.wait_event("recording", match=lambda m: m["state"] == "started")
    assert notice["by"] == "automatic recording"
    recording = server.core.recordings.get("auto", notice["id"])
    await until(lambda: all(t.file.frames > 10 for t in recording._tracks.values()) and len(recording._tracks) == 2,
                what="tracks recorded")
    await pub.close()
    await until(lambda: recording.state == "stopped", what="stopped when the room emptied")
    assert recording.manifest["reason"] == "room-empty"
    assert len(recording.describe()["tracks"]) == 2


async def test_delete_export_and_retention(server, tmp_path):
    await server.create_room("keep", PW)
    pub = await Client.join(server.url, await server.token("keep", PW, name="Dr Pub"))
    await pub.publish(PatternTrack(), "camera")
    ids = []
    for _ in range(2):
        got, body = await api(server, "POST", BASE.format("keep"))
        ids.append(body["recording"]["id"])
        active = server.core.recordings.active("keep")
        await until(lambda: active._tracks and next(iter(active._tracks.values())).file.frames > 30,
                    what="1 s recorded")
        await api(server, "POST", BASE.format("keep") + f"/{ids[-1]}/stop")
    await pub.close()
    got, body = await api(server, "GET", BASE.format("keep"))
    assert [r["id"] for r in body["recordings"]] == ids
    # export: decrypted, playable, with the manifest
    out = tmp_path / "export"
    done = subprocess.run([sys.executable, "-m", "signaling", "recordings", "export", ids[0], str(out),
                           "--data-dir", str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    webm = next(out.glob("*.webm"))
    with av.open(str(webm)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 30
    assert json.loads((out / "manifest.json").read_text())["id"] == ids[0]
    # delete: files and the wrapped key gone, audited
    directory = server.core.recordings.root / ids[0]
    got, _ = await api(server, "DELETE", BASE.format("keep") + f"/{ids[0]}")
    assert got == 204 and not directory.exists()
    got, _ = await api(server, "GET", BASE.format("keep") + f"/{ids[0]}")
    assert got == 404
    # retention: the other one expires once it is older than the setting
    server.core.recordings.retention_days = 1
    assert await server.core.recordings.expire() == 0
    assert await server.core.recordings.expire(now=time.time() + 2 * 86400) == 1
    assert not (server.core.recordings.root / ids[1]).exists()
    await server.core.audit.settled()
    actions = {e["action"] for e in audit_entries(tmp_path)}
    assert {"recording-delete", "recording-expire"} <= actions


async def test_clinical_notices_and_the_session_log_range_are_in_the_timeline(server):
    await server.create_room("clin", PW)
    doctor = await clinical_peers.join(server, "clin", "Dr Lab", role="host")
    try:
        await doctor.send_fhir(clinical_peers.potassium(5.9))  # before: outside the range
        got, body = await api(server, "POST", BASE.format("clin"), doctor.client.token)
        rec_id = body["recording"]["id"]
        await doctor.send_fhir(clinical_peers.potassium(6.4))
        got, body = await api(server, "POST", BASE.format("clin") + f"/{rec_id}/stop", doctor.client.token)
    finally:
        await clinical_peers.close(doctor)
    manifest = body["recording"]
    notices = [e for e in manifest["events"] if e["type"] == "clinical"]
    assert len(notices) == 1 and notices[0]["kind"] == "lab"
    log = manifest["session_log"]
    assert log["from_seq"] == log["to_seq"] == notices[0]["seq"]
