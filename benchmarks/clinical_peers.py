"""Peers of the clinical benchmark, built on the Python client (clients/python)."""

from __future__ import annotations

import sys
from pathlib import Path

# The client is not an installed package (pytest.ini puts the same path first).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python"))

from telemed_client import Client, fetch_token  # noqa: E402
from telemed_client.clinical import CHANNELS, Clinical  # noqa: E402
from telemed_client.ecg_sources import EcgSignal, synthetic  # noqa: E402
from telemed_client.wire import unpack_ecg  # noqa: E402

LEADS, RATE = 12, 500


async def join_clinical(url: str, room: str, password: str, role: str, name: str) -> Clinical:
    token = (await fetch_token(url, room, password, role=role, name=name))["token"]
    return await Clinical.open(await Client.join(url, token, channels=CHANNELS))


def ecg_signal() -> EcgSignal:
    return synthetic(LEADS, RATE, 30.0)


def arrivals(peer: Clinical, stream_id: int) -> dict[int, float]:
    """seq -> arrival time of every frame of ``stream_id`` this peer has received."""
    out: dict[int, float] = {}
    while not peer.ecg_frames.empty():
        t, data = peer.ecg_frames.get_nowait()
        frame = unpack_ecg(data)
        if frame.stream_id == stream_id:
            out.setdefault(frame.seq, t)
    return out
