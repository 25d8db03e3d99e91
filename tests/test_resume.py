"""Resume instead of rejoin (docs/resume.md), over real aiortc peers on loopback: the same
seat, tracks and subscriptions on a new connection; others see `reconnecting`, never a
leave; clinical data across the gap arrives once."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from sfu import Producer
from sfu.codec import Codec
from sfu.consumer import Consumer
from sfu.rtp_packet import RtpPacket
from telemed_client import Client, ClientError
from telemed_client.clinical import CHANNELS, Clinical
from telemed_client.ecg_sources import synthetic
from telemed_client.wire import unpack_ecg
from tests.clinical_peers import potassium
from tests.server import start_server

PASSWORD = "resume-pw-1"


async def frames_from(track, count: int, timeout: float = 20) -> None:
    async def pull() -> None:
        for _ in range(count):
            await track.recv()
    await asyncio.wait_for(pull(), timeout)


async def seat(server, room: str, name: str, role: str = "participant", **join) -> Client:
    return await Client.join(server.url, await server.token(room, PASSWORD, role, name), **join)


def kinds(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


async def wait_until(condition, timeout: float = 20) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


class Written(Consumer):
    """An in-process consumer that keeps what it would send: (seq, timestamp, payload)."""

    def __init__(self, producer: Producer) -> None:
        super().__init__(producer)
        self.out: list[tuple[int, int, bytes]] = []

    def write(self, packet: RtpPacket, seq: int, timestamp: int) -> None:
        self.out.append((seq, timestamp, packet.payload))


def test_a_producer_reattached_to_a_new_source_continues_each_consumers_numbering():
    sent: list[bytes] = []
    producer = Producer(Codec("audio/opus", 48000, 2), 111, 1, sent.append)
    consumer = Written(producer)
    consumer.attach()
    for i in range(5):  # the old connection: its own sequence and timestamp space
        producer.receive(RtpPacket(111, 0, 60000 + i, 1_000_000 + 960 * i, 7, b"old%d" % i), time.monotonic(), 50)
    producer.detach()
    producer.reattach(109, None, 2, sent.append, object())  # the publisher's new connection (new payload type)
    producer.receive(RtpPacket(111, 0, 5, 17, 8, b"stale pt"), time.monotonic(), 50)  # the old type: ignored
    for i in range(3):
        producer.receive(RtpPacket(109, 0, 123 + i, 555 + 960 * i, 8, b"new%d" % i), time.monotonic(), 50)
    seqs = [seq for seq, _, _ in consumer.out]
    stamps = [ts for _, ts, _ in consumer.out]
    assert [p for _, _, p in consumer.out] == [b"old0", b"old1", b"old2", b"old3", b"old4", b"new0", b"new1", b"new2"]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))  # no hole, no jump
    gap = (stamps[5] - stamps[4]) & 0xFFFFFFFF
    assert 0 < gap < 48000 * 60  # forward by the wall time that passed, not a random jump
    assert [(b - a) & 0xFFFFFFFF for a, b in zip(stamps[5:], stamps[6:])] == [960, 960]


async def test_resume_keeps_peer_id_tracks_and_the_subscribers_stream(server):
    await server.create_room("r1", PASSWORD)
    ambulance = await seat(server, "r1", "Ambulance")
    doctor = await seat(server, "r1", "Dr A")
    seen: list[dict] = []
    doctor.on_event = seen.append
    try:
        audio_id = await ambulance.publish(AudioStreamTrack(), "microphone")
        video_id = await ambulance.publish(VideoStreamTrack(), "camera")
        await wait_until(lambda: {audio_id, video_id} <= set(doctor.tracks))
        audio = await doctor.subscribe(audio_id)
        video = await doctor.subscribe(video_id)
        await frames_from(audio, 10)
        await frames_from(video, 2)
        peer_id, secret = ambulance.peer_id, ambulance.info["resume_secret"]

        await ambulance.resume("test")

        assert ambulance.peer_id == peer_id and ambulance.info["resumed"] is True
        assert ambulance.info["resume_secret"] != secret  # a new one for the next resume
        assert sorted(ambulance._published.values()) == sorted([audio_id, video_id])
        # The doctor's subscription was never touched: the same remote tracks go on.
        await frames_from(audio, 50)
        await frames_from(video, 5)
        await doctor.wait_event("participant-reconnected",
                                match=lambda m: m["participant"]["peer_id"] == peer_id)
        assert "participant-left" not in kinds(seen) and "track-unpublished" not in kinds(seen)
        assert set(doctor.tracks) == {audio_id, video_id}
        live = server.core.live.rooms["r1"]
        assert list(live.peers) == [peer_id, doctor.peer_id] or set(live.peers) == {peer_id, doctor.peer_id}
        assert set(live.router.producers) == {audio_id, video_id}
    finally:
        await ambulance.close()
        await doctor.close()


async def test_a_dropped_socket_shows_reconnecting_and_resumes_on_its_own(server):
    await server.create_room("r2", PASSWORD)
    ambulance = await seat(server, "r2", "Ambulance")
    doctor = await seat(server, "r2", "Dr A")
    seen: list[dict] = []
    doctor.on_event = seen.append
    try:
        video_id = await ambulance.publish(VideoStreamTrack(), "camera")
        await wait_until(lambda: video_id in doctor.tracks)
        video = await doctor.subscribe(video_id)
        await frames_from(video, 2)
        peer_id = ambulance.peer_id

        await ambulance._ws.close()  # the socket goes; the watchdog resumes

        mark = await doctor.wait_event("participant-reconnecting")
        assert mark["peer_id"] == peer_id
        back = await doctor.wait_event("participant-reconnected", timeout=20)
        assert back["participant"]["peer_id"] == peer_id and not back["participant"]["reconnecting"]
        await ambulance.wait_event("resumed")
        await frames_from(video, 10)
        assert ambulance.peer_id == peer_id
        assert "participant-left" not in kinds(seen) and "participant-joined" not in kinds(seen)
    finally:
        await ambulance.close()
        await doctor.close()


async def test_without_a_resume_the_grace_period_ends_in_a_leave(tmp_path):
    running, runner = await start_server(str(tmp_path), resume_grace=3.0)
    try:
        await running.create_room("r3", PASSWORD)
        ambulance = await seat(running, "r3", "Ambulance", auto_resume=False)
        doctor = await seat(running, "r3", "Dr A")
        try:
            track_id = await ambulance.publish(VideoStreamTrack(), "camera")
            await wait_until(lambda: track_id in doctor.tracks)
            await ambulance._ws.close()
            await doctor.wait_event("participant-reconnecting")
            # Still listed, marked, with its track, until the grace period ends.
            assert running.core.live.rooms["r3"].peers[ambulance.peer_id].reconnecting
            left = await doctor.wait_event("participant-left", timeout=10)
            assert left["peer_id"] == ambulance.peer_id
            await wait_until(lambda: track_id not in doctor.tracks)
            # Too late: the seat is gone, so the same ticket joins afresh.
            late = await Client.join(running.url, ambulance.token, resume=ambulance.resume_ticket,
                                     auto_resume=False)
            assert late.peer_id != ambulance.peer_id and late.info["resumed"] is False
            await late.close()
        finally:
            await ambulance.close()
            await doctor.close()
    finally:
        await runner.cleanup()


async def test_resume_needs_the_secret_and_the_same_identity(server):
    await server.create_room("r4", PASSWORD)
    ambulance = await seat(server, "r4", "Ambulance", auto_resume=False)
    try:
        ticket = ambulance.resume_ticket
        for bad, code in ((dict(ticket, resume_secret="guess"), "forbidden"),
                          ({"resume": ticket["resume"]}, "bad-request"),
                          (dict(ticket, resume_secret=7), "bad-request")):
            with pytest.raises(ClientError) as refused:
                await Client.join(server.url, ambulance.token, resume=bad, auto_resume=False)
            assert refused.value.code == code
        other = await server.token("r4", PASSWORD, "participant", "Someone else")
        with pytest.raises(ClientError) as refused:
            await Client.join(server.url, other, resume=ticket, auto_resume=False)
        assert refused.value.code == "forbidden"
        assert not server.core.live.rooms["r4"].peers[ambulance.peer_id].reconnecting
    finally:
        await ambulance.close()


async def test_the_replaced_socket_speaks_for_nobody(server):
    await server.create_room("r5", PASSWORD)
    first = await seat(server, "r5", "Ambulance", auto_resume=False)
    second = await Client.join(server.url, first.token, resume=first.resume_ticket, auto_resume=False)
    try:
        kicked = await first.wait_event("kicked")
        assert kicked["reason"] == "resumed elsewhere"
        with pytest.raises(ClientError) as refused:
            await first.request({"type": "mute", "track_id": "x", "muted": True})
        assert refused.value.code == "not-joined"
        await first.close()  # its leave must not take the seat from the new socket
        await asyncio.sleep(0.2)
        assert second.peer_id in server.core.live.rooms["r5"].peers
        assert (await second.request({"type": "ping"}))["type"] == "pong"
    finally:
        await second.close()


async def test_ecg_across_a_resume_arrives_complete_and_once(server):
    await server.create_room("r6", PASSWORD)
    device = await Clinical.open(await seat(server, "r6", "Ambulance", role="device", channels=CHANNELS))
    doctor = await Clinical.open(await seat(server, "r6", "Dr A", channels=CHANNELS))
    try:
        signal = synthetic(3, 500, 4.0)
        sent: list[int] = []

        def cut_at_25(seq: int, _: float) -> None:
            sent.append(seq)
            if seq == 25:  # mid-stream: the old channels die with frames in flight
                asyncio.ensure_future(device.client.resume("test"))

        frames = await device.stream_ecg(signal, stream_id=11, on_sent=cut_at_25)
        assert frames == 100 and device.client.generation == 1
        got: list[int] = []
        async def pull() -> None:
            while len(got) < frames:
                got.append(unpack_ecg((await doctor.ecg_frames.get())[1]).seq)
        await asyncio.wait_for(pull(), 20)
        assert sorted(got) == list(range(frames))  # none lost, none twice
        end = await doctor.wait_for(lambda m: m["type"] == "ecg-end")
        assert end["reason"] == "ended" and end["frames"] == frames
        await asyncio.sleep(0.3)
        assert doctor.ecg_frames.empty()
        assert not [m for m in device.messages if m.get("type") == "error"]
    finally:
        await asyncio.gather(device.client.close(), doctor.client.close())


async def test_labs_sent_again_after_a_resume_are_shared_once(server):
    await server.create_room("r7", PASSWORD)
    device = await Clinical.open(await seat(server, "r7", "Ambulance", role="device", channels=CHANNELS,
                                            auto_resume=False))
    doctor = await Clinical.open(await seat(server, "r7", "Dr A", channels=CHANNELS))
    try:
        message = {"type": "lab-fhir", "resource": potassium(), "ref": "lab-42"}
        device.send(message)
        first = await device.wait_for(lambda m: m.get("type") == "lab" and m.get("ref") == "lab-42")
        start = len(device.messages)
        device.send(message)  # as a client does when its answer was lost in a network change
        again = await device.wait_for(lambda m: m.get("ref") == "lab-42", start=start)
        assert again == first  # the same receipt: same seq
        notices = [m for m in doctor.messages if m.get("type") == "lab"]
        await doctor.wait_for(lambda m: m.get("type") == "lab")
        await asyncio.sleep(0.3)
        notices = [m for m in doctor.messages if m.get("type") == "lab"]
        assert len(notices) == 1 and "ref" not in notices[0]
        log = [e for e in server.core.live.rooms["r7"].clinical.log.read() if e["kind"] == "lab"]
        assert len(log) == 1
        # A different ref is a different result.
        device.send({**message, "ref": "lab-43"})
        await device.wait_for(lambda m: m.get("type") == "lab" and m.get("ref") == "lab-43")
        assert json.dumps(first["results"]) == json.dumps(
            [m for m in device.messages if m.get("ref") == "lab-43"][0]["results"])
    finally:
        await asyncio.gather(device.client.close(), doctor.client.close())
