"""An ambulance tablet: joins a room as a device, streams ECG and a test video.

    python -m telemed_client.ambulance --url http://127.0.0.1:8080 --room stroke --password ...
    (or --invite CODE, a device invitation from the host)
        [--source synthetic | dicom:FILE | wfdb:RECORD] [--leads 12] [--rate 500]
        [--seconds 60] [--no-video] [--no-audio]

It resumes on its own after a network change (docs/resume.md) and says so; frames of
the ECG sent meanwhile are delivered late but complete.
"""

from __future__ import annotations

import argparse
import asyncio
import math

import av
import numpy as np
from aiortc import AudioStreamTrack, VideoStreamTrack

from .client import Client, fetch_token
from .clinical import CHANNELS, Clinical
from .ecg_sources import EcgSignal, from_dicom_waveform, from_wfdb, synthetic


class TestPattern(VideoStreamTrack):
    """Colour bars with a sweeping line: shows at a glance that video is live."""

    def __init__(self, width: int = 640, height: int = 360) -> None:
        super().__init__()
        bars = np.array([[192, 192, 192], [0, 192, 192], [192, 192, 0], [0, 192, 0],
                         [192, 0, 192], [0, 0, 192], [192, 0, 0]], np.uint8)
        self._card = np.repeat(bars, math.ceil(width / len(bars)), axis=0)[:width][None].repeat(height, 0)
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = self._card.copy()
        image[:, (self._index * 6) % image.shape[1]] = 255
        self._index += 1
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class Tone(AudioStreamTrack):
    """A quiet 440 Hz beep: shows that audio is live, as a crew's microphone would."""

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # paced silence, 20 ms at 8 kHz
        t = (frame.pts + np.arange(frame.samples)) / frame.sample_rate
        tone = (2000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        out = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        out.pts, out.sample_rate, out.time_base = frame.pts, frame.sample_rate, frame.time_base
        return out


def load_source(spec: str, leads: int, rate: int) -> EcgSignal:
    kind, _, path = spec.partition(":")
    if kind == "synthetic":
        return synthetic(leads, rate, 60.0)
    if kind == "dicom" and path:
        return from_dicom_waveform(path).fitted()
    if kind == "wfdb" and path:
        return from_wfdb(path).fitted()
    raise ValueError(f"unknown source {spec!r}: synthetic, dicom:FILE or wfdb:RECORD")


async def run(args: argparse.Namespace) -> None:
    signal = load_source(args.source, args.leads, args.rate)
    token = (await fetch_token(args.url, args.room, args.password, role="device", name=args.name,
                               invite=args.invite))["token"]
    client = await Client.join(args.url, token, channels=CHANNELS)
    client.on_recording = say_recording
    say_recording(client.recording)
    client.on_resumed.append(lambda: print(f"connection resumed as {client.peer_id}", flush=True))
    try:
        if not args.no_video:
            await client.publish(TestPattern(), "camera", f"{args.name} camera")
        if not args.no_audio:
            await client.publish(Tone(), "microphone", f"{args.name} microphone")
        clinical = await Clinical.open(client)
        print(f"streaming {len(signal.leads)}-lead ECG at {signal.sample_rate} Hz to room {args.room!r}",
              flush=True)
        frames = await clinical.stream_ecg(signal, seconds=args.seconds or math.inf)
        print(f"sent {frames} ECG frames, all acknowledged", flush=True)
    finally:
        await client.close()


def say_recording(recording: dict | None) -> None:
    """Consent: the crew hears when the session is recorded, and when it stops."""
    if recording is not None:
        print(f"REC: this session is being recorded (started by {recording.get('by') or 'someone'})")
    else:
        print("this session is not being recorded")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m telemed_client.ambulance", description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="server base URL, e.g. https://consult.example.org")
    p.add_argument("--room", required=True)
    credential = p.add_mutually_exclusive_group(required=True)
    credential.add_argument("--password", help="the room's device (or host) password")
    credential.add_argument("--invite", help="the code of a device invitation link")
    p.add_argument("--name", default="Ambulance")
    p.add_argument("--source", default="synthetic", help="synthetic (default), dicom:FILE or wfdb:RECORD")
    p.add_argument("--leads", type=int, default=12, choices=(1, 3, 12), help="synthetic source only")
    p.add_argument("--rate", type=int, default=500, help="synthetic source only, Hz (250-1000)")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--no-video", action="store_true", help="no camera")
    p.add_argument("--no-audio", action="store_true", help="no microphone")
    return p


def main() -> None:
    try:
        asyncio.run(run(build_parser().parse_args()))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
