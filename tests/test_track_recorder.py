"""The recorder's consumer on a real producer: packets from aiortc's VP8 packetizer are held
as they come and recorded in batches (recorder/track_recorder.py), and nothing held is lost
at a tick or at the end; the file decodes to every frame sent."""

from __future__ import annotations

import os

import av

from recorder.media_clock import SenderClock
from recorder.track_file import TrackFile
from recorder.track_recorder import BATCH, TrackRecorder
from sfu.codec import Codec
from sfu.producer import Producer
from tests.test_recorder_frames import packets
from vault import EncryptedReader, KeyRing


async def test_packets_are_recorded_in_batches_and_none_held_is_lost(tmp_path):
    ring = KeyRing(os.urandom(32))
    producer = Producer(Codec("video/VP8", 90000), 96, 1, lambda data: None)
    producer.ssrc = 1234
    path = tmp_path / "camera.webm.enc"
    errors: list[OSError] = []
    recorder = TrackRecorder(producer, TrackFile(path, *ring.new_data_key(), "video/vp8"), SenderClock(),
                             errors.append)
    recorder.attach()
    stream = packets("video/vp8", [(320, 240)] * 40)
    frame_of = {ts: i for i, ts in enumerate(sorted({p.timestamp for p in stream}))}
    t0 = 1000.0

    def receive(upto: int, start: int = 0) -> None:
        for packet in stream[start:upto]:
            producer.receive(packet, t0 + frame_of[packet.timestamp] / 30, len(packet.payload) + 12)

    def completed(n: int) -> int:  # frames whose last packet is among the first n
        return sum(p.marker for p in stream[:n])

    assert len(stream) > BATCH + 3 and completed(BATCH - 1) > 0
    receive(BATCH - 1)
    assert recorder.file.frames == 0  # held, not yet recorded
    receive(BATCH, BATCH - 1)
    assert recorder.file.frames == completed(BATCH)  # a batch: all of it recorded
    receive(BATCH + 3, BATCH)
    assert recorder.file.frames == completed(BATCH)
    recorder.tick(t0 + 10)  # a tick records what is held
    at_tick = recorder.file.frames
    assert at_tick == completed(BATCH + 3) > completed(BATCH)
    receive(len(stream), BATCH + 3)
    recorder.finish()  # the end records the rest
    assert recorder.file.frames > at_tick and not errors
    with EncryptedReader(path, ring) as reader, av.open(reader) as container:
        assert sum(1 for _ in container.decode(video=0)) == recorder.file.frames == 40
