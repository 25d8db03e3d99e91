"""Recording cost: CPU-seconds per recorded minute of one 720p30 VP8 camera plus Opus.

The recorder's own path, end to end until a playable encrypted file exists: RTP payloads
(the pre-encoded benchmark clip, packetized by aiortc's VP8 payloader; Opus packets from
libopus) go through the frame assembler, PyAV's live WebM muxer and the vault's AES-GCM
chunks, sealed once per second of media as the recorder does, and the files are closed.
It runs as fast as it can and reports process CPU per minute of media, then checks the
files decode. Receiving and decrypting SRTP is not counted: the SFU pays that to forward
anyway. (The side-by-side with Janus VideoRoom `record: true` + janus-pp-rec is not here
yet: this machine has no janus-pp-rec, which ships in Debian's janus-tools.)

    .venv/bin/python -m benchmarks.recording [--minutes 2]
"""

from __future__ import annotations

import argparse
import fractions
import json
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from aiortc.codecs.vpx import Vp8Encoder

from recorder.depacketizer import DEPACKETIZERS
from recorder.frame_assembler import FrameAssembler
from recorder.track_file import TrackFile
from sfu.keyframe import vp8_keyframe
from sfu.rtp_packet import RtpPacket
from vault import EncryptedReader, KeyRing

from .clip import load as load_clip

RESULTS = Path(__file__).resolve().parent / "results"


def video_packets(clip) -> list[list[bytes]]:
    payloader = Vp8Encoder()
    out = []
    for i, data in enumerate(clip.frames):
        packet = av.Packet(data)
        packet.pts, packet.time_base = i, fractions.Fraction(1, clip.fps)
        payloads, _ = payloader.pack(packet)
        out.append(payloads)
    return out


def opus_packets(seconds: int = 10) -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "stereo", "s16"
    encoder.bit_rate = 32000
    encoder.open()
    out = []
    t = np.arange(960) / 48000
    for i in range(seconds * 50):
        tone = (np.sin(2 * np.pi * 440 * (t + i * 0.02)) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, i * 960
        frame.time_base = fractions.Fraction(1, 48000)
        out += [bytes(p) for p in encoder.encode(frame)]
    return out


def record(directory: Path, ring: KeyRing, minutes: float, clip, video, audio) -> dict:
    keys = ring.new_data_key()
    vfile = TrackFile(directory / "video.webm.enc", *keys, "video/VP8")
    afile = TrackFile(directory / "audio.webm.enc", *keys, "audio/opus")
    assembler = FrameAssembler(DEPACKETIZERS["video/vp8"](), lambda: None)
    frames = int(minutes * 60 * clip.fps)
    seq = 0
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    for i in range(frames):
        payloads = video[i % len(video)]
        timestamp = i * 3000
        for j, payload in enumerate(payloads):
            packet = RtpPacket(96, int(j == len(payloads) - 1), seq & 0xFFFF, timestamp & 0xFFFFFFFF, 1, payload)
            packet.keyframe = j == 0 and vp8_keyframe(payload)
            seq += 1
            for frame in assembler.push(packet, i / clip.fps):
                vfile.write(frame.data, i * 1000 // clip.fps, frame.keyframe)
        # audio: 20 ms packets up to this video frame's time
        for k in range(int(i * 50 / clip.fps), int((i + 1) * 50 / clip.fps)):
            afile.write(audio[k % len(audio)], k * 20, True)
        if i % clip.fps == clip.fps - 1:  # once a second of media, as the recorder does
            vfile.flush()
            afile.flush()
    vfile.close()
    afile.close()
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    return {"media_minutes": minutes, "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
            "cpu_seconds_per_recorded_minute": round(cpu / minutes, 3),
            "video_bytes": os.path.getsize(directory / "video.webm.enc"),
            "audio_bytes": os.path.getsize(directory / "audio.webm.enc"), "video_frames": vfile.frames}


def check_playable(directory: Path, ring: KeyRing) -> dict:
    counts = {}
    for name in ("video.webm.enc", "audio.webm.enc"):
        with EncryptedReader(directory / name, ring) as reader, av.open(reader) as container:
            counts[name] = sum(1 for p in container.demux(container.streams[0]) if p.size)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.recording")
    parser.add_argument("--minutes", type=float, default=2.0, help="minutes of media to record (default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS / "recording.json")
    args = parser.parse_args()
    clip = load_clip()
    video, audio = video_packets(clip), opus_packets()
    ring = KeyRing(os.urandom(32))
    with tempfile.TemporaryDirectory() as tmp:
        result = record(Path(tmp), ring, args.minutes, clip, video, audio)
        result["demuxed_packets"] = check_playable(Path(tmp), ring)
    result.update({"clip": f"1280x720p{clip.fps} VP8 {round(clip.bitrate / 1e6, 2)} Mbit/s + Opus 32 kbit/s",
                   "janus": "not measured (no janus-pp-rec on this machine)"})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
