"""The S3 archive of finished recordings, against a real local S3 store (SeaweedFS): a
recording goes up still encrypted and is said archived only once it is there; its tracks
replay with Range requests from the bucket once the local files are gone; a store that
cannot be reached or refuses is reported, retried, and never claimed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import aiohttp
import pytest

from recorder import manifest_file
from recorder import ArchiveError
from recorder.recording_manager import CLAIM
from recorder.s3_archive import S3Archive, S3Location
from signaling import doctor, recordings_cli
from signaling.config import Settings, load
from tests.clinical_peers import PASSWORD
from tests.s3_server import s3_store  # noqa: F401  (a fixture)
from tests.server import free_port, start_server
from tests.test_recording import until
from tests.test_recording_media import ROOM, audit_records, get, record

EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # every WebM/Matroska file starts with it
METRICS_KEY = "m" * 32


def archive_state(server, recording_id: str) -> dict:
    return server.core.recordings.get(ROOM, recording_id).manifest.get("archive") or {}


def nowhere(store) -> S3Archive:
    """The store's settings, but nothing listens at its address."""
    return S3Archive(S3Location(f"http://127.0.0.1:{free_port()}", store.bucket, store.access_key, store.secret_key))


async def recorded(server) -> tuple[str, dict]:
    """A host's token and a one-second recording of the room, stopped (its manifest)."""
    await server.create_room(ROOM, PASSWORD)
    host = await server.mint(ROOM, "host", "Dr. Host", identity="host-1")
    return host, await record(server, host, seconds_of_video=1)


def bucket_objects(store, prefix: str = "") -> dict[str, bytes]:
    client = store.client()
    found = {}
    for item in client.list_objects(store.bucket, prefix=prefix, recursive=True):
        response = client.get_object(store.bucket, item.object_name)
        try:
            found[item.object_name] = response.read()
        finally:
            response.close()
            response.release_conn()
    return found


async def test_a_recording_is_archived_encrypted_and_replays_from_the_bucket(s3_store, tmp_path):  # noqa: F811
    master = base64.b64encode(os.urandom(32)).decode()  # nodes that share the bucket share the master key
    server, runner = await start_server(str(tmp_path / "data"), master_key=master, s3_local_days=1,
                                        **s3_store.settings(s3_prefix="site-a"))
    try:
        host, stopped = await recorded(server)
        rec_id = stopped["id"]
        await until(lambda: archive_state(server, rec_id).get("state") == "archived", what="archived")

        # Up as they are at rest: vault streams, no container header, no room name in the clear.
        objects = await asyncio.to_thread(bucket_objects, s3_store, f"site-a/recordings/{rec_id}/")
        recording = server.core.recordings.get(ROOM, rec_id)
        local = {p.name: p.read_bytes() for p in recording.directory.iterdir() if not p.name.startswith(".")}
        assert {k.rsplit("/", 1)[1] for k in objects} == set(local) == {
            manifest_file.NAME, *(t["file"] for t in stopped["tracks"])}
        for key, data in objects.items():
            assert data == local[key.rsplit("/", 1)[1]]
            assert EBML_MAGIC not in data and ROOM.encode() not in data, key
        # The manifest on disk says so (it was replaced only after the upload).
        assert manifest_file.load(recording.directory, server.core.keyring)[0]["archive"]["state"] == "archived"
        await server.core.audit.settled()
        assert any(r["action"] == "recording-archive" for r in audit_records(server))

        base = f"{server.url}/api/rooms/{ROOM}/recordings/{rec_id}"
        status, _, body = await get(base, {"Authorization": f"Bearer {host}"})
        tracks = json.loads(body)["tracks"]
        ranges = {}
        for track in tracks:
            url = server.url + track["url"]
            status, _, whole = await get(url)
            assert status == 200 and whole.startswith(EBML_MAGIC)
            middle = len(whole) // 2
            ranges[url] = whole, f"bytes={middle}-{middle + 4999}", whole[middle:middle + 5000]

        # Pruned here after s3_local_days: the manifest stays, the tracks come from the bucket.
        manager = server.core.recordings
        assert await manager.prune() == 0  # not a day old yet
        assert await manager.prune(now=time.time() + 1.5 * 86400) == 1
        assert any(r["action"] == "recording-prune" for r in audit_records(server))
        assert [p.name for p in recording.directory.iterdir() if not p.name.startswith(".")] == [manifest_file.NAME]
        for url, (whole, header, part) in ranges.items():
            status, headers, body = await get(url, {"Range": header})
            assert status == 206 and body == part
            assert headers["Content-Range"].endswith(f"/{len(whole)}")
            status, _, body = await get(url)
            assert status == 200 and body == whole

        # A node that does not share the data directory finds it in the bucket and replays it.
        other, other_runner = await start_server(str(tmp_path / "other"), master_key=master,
                                                 **s3_store.settings(s3_prefix="site-a"))
        try:
            await other.create_room(ROOM, PASSWORD)
            other_host = await other.mint(ROOM, "host", "Dr. Other", identity="host-2")
            await until(lambda: rec_id in other.core.recordings._recordings, what="found in the bucket")
            status, _, body = await get(f"{other.url}/api/rooms/{ROOM}/recordings/{rec_id}",
                                        {"Authorization": f"Bearer {other_host}"})
            assert status == 200 and json.loads(body)["archive"]["state"] == "archived"
            for track, (whole, header, part) in zip(json.loads(body)["tracks"], ranges.values()):
                status, _, got = await get(other.url + track["url"], {"Range": header})
                assert status == 206 and got == part
            # `telemed recordings export` there reads it from the bucket too.
            out = tmp_path / "export"
            await asyncio.to_thread(recordings_cli.run, other.core.settings, ["export", rec_id, str(out)])
            exported = {p.name: p.read_bytes() for p in out.iterdir()}
            assert sorted(exported[t["file"].removesuffix(".enc")] for t in tracks) == sorted(
                w for w, _, _ in ranges.values())
        finally:
            await other_runner.cleanup()

        # The store gone: a clear 502, and a delete keeps the recording rather than leave a copy.
        store, manager._archive = manager._archive, nowhere(s3_store)
        status, _, body = await get(next(iter(ranges)), {"Range": "bytes=0-99"})
        assert status == 502 and json.loads(body)["code"] == "archive-unavailable"
        async with aiohttp.ClientSession() as http, http.delete(base, headers={"Authorization": f"Bearer {host}"}) as r:
            assert r.status == 502 and (await r.json())["code"] == "archive-unavailable"
        assert manager.get(ROOM, rec_id) is recording
        manager._archive = store

        # Another node sharing the data directory is uploading it: not deleted under it.
        claim = recording.directory / CLAIM
        claim.touch()
        async with aiohttp.ClientSession() as http, http.delete(base, headers={"Authorization": f"Bearer {host}"}) as r:
            assert r.status == 409 and (await r.json())["code"] == "archiving"
        claim.unlink()

        # Deleting the recording deletes the bucket's copy too.
        async with aiohttp.ClientSession() as http, http.delete(base, headers={"Authorization": f"Bearer {host}"}) as r:
            assert r.status in (200, 204), await r.text()
        assert await asyncio.to_thread(bucket_objects, s3_store, f"site-a/recordings/{rec_id}/") == {}
    finally:
        await runner.cleanup()


async def test_a_refusing_or_missing_store_is_reported_retried_and_never_claimed(s3_store, tmp_path):  # noqa: F811
    server, runner = await start_server(str(tmp_path / "data"), metrics_key=METRICS_KEY,
                                        **s3_store.settings(s3_secret_key="wrong-secret-key"))
    try:
        _, stopped = await recorded(server)
        rec_id = stopped["id"]
        await until(lambda: archive_state(server, rec_id).get("state") == "failed", what="archive failed")
        assert "SignatureDoesNotMatch" in archive_state(server, rec_id)["error"]
        recording = server.core.recordings.get(ROOM, rec_id)
        assert "archive" not in manifest_file.load(recording.directory, server.core.keyring)[0]
        await server.core.audit.settled()
        fails = [r for r in audit_records(server) if r["action"] == "recording-archive-fail"]
        assert len(fails) == 1 and "SignatureDoesNotMatch" in fails[0]["details"]["reason"]
        assert "wrong-secret-key" not in json.dumps(fails)
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics",
                                                                 headers={"Authorization": f"Bearer {METRICS_KEY}"}) as r:
            metrics = await r.text()
        assert "telemed_recording_archive_failures_total 1.0" in metrics

        assert [(f.status, "refused" in f.detail) for f in doctor.s3(server.core.settings)] == [
            ("fail", True)]

        # Nothing listens there: a clear reason, and the manifest is left as it was.
        with pytest.raises(ArchiveError, match="cannot be reached"):
            await asyncio.to_thread(nowhere(s3_store).archive, recording)
        assert "archive" not in manifest_file.load(recording.directory, server.core.keyring)[0]

        # Once the store takes it, the retry archives it (and `telemed doctor` says the store is fine).
        assert [f.status for f in doctor.s3(Settings(**s3_store.settings()))] == ["ok"]
        manager = server.core.recordings
        manager._archive = S3Archive(S3Location(s3_store.endpoint, s3_store.bucket,
                                                s3_store.access_key, s3_store.secret_key))
        manager._archive_due.set()
        await until(lambda: archive_state(server, rec_id).get("state") == "archived", what="archived on retry")
    finally:
        await runner.cleanup()


def test_s3_settings_are_checked_and_the_keys_kept_secret():
    env = {"TELEMED_S3_ENDPOINT": "http://127.0.0.1:9000", "TELEMED_S3_BUCKET": "recordings",
           "TELEMED_S3_ACCESS_KEY": "access-key-1", "TELEMED_S3_SECRET_KEY": "secret-key-1",
           "TELEMED_S3_PREFIX": "/site-b"}
    settings = load(None, env)
    assert settings.s3_prefix == "site-b/"
    assert "secret-key-1" not in repr(settings) and "access-key-1" not in repr(settings)
    for broken, message in (({"TELEMED_S3_SECRET_KEY": None}, "s3_endpoint needs"),
                            ({"TELEMED_S3_ENDPOINT": None}, "need s3_endpoint"),
                            ({"TELEMED_S3_ENDPOINT": "ftp://127.0.0.1"}, "s3_endpoint must be an http")):
        changed = {k: v for k, v in {**env, **broken}.items() if v is not None}
        with pytest.raises(ValueError, match=message):
            load(None, changed)
