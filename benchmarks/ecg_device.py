"""The ECG side of the clinical benchmark, in its own process so that its timing is not
disturbed by the load the main process generates: a device streaming 12 leads at
500 Hz, and one quiet viewer that does nothing but receive.

    python -m benchmarks.ecg_device URL ROOM PASSWORD

Streams until a line arrives on stdin, then prints one JSON object:
``{"stream_id", "sent": {seq: t}, "quiet": {seq: t}}`` with CLOCK_MONOTONIC times,
which every process on the host shares.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys

from . import clinical_peers
from .clinical_peers import join_clinical

STREAM_ID = 12500


async def main(url: str, room: str, password: str) -> None:
    quiet = await join_clinical(url, room, password, "viewer", "Quiet viewer")
    device = await join_clinical(url, room, password, "device", "Ambulance")
    sent: dict[int, float] = {}
    stream = asyncio.ensure_future(device.stream_ecg(
        clinical_peers.ecg_signal(), stream_id=STREAM_ID, seconds=math.inf,
        on_sent=lambda seq, t: sent.__setitem__(seq, t)))
    print("streaming", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    stream.cancel()
    await asyncio.gather(stream, return_exceptions=True)
    arrivals = clinical_peers.arrivals(quiet, STREAM_ID)
    print(json.dumps({"stream_id": STREAM_ID, "sent": sent, "quiet": arrivals}), flush=True)
    for peer in (device, quiet):
        await peer.client.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
