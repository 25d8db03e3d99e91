"""The device side of benchmarks/resume.py, run in the client namespace: joins, publishes
the ambulance's tone as audio and, when its route to the server changes (the network
changed), either resumes its seat (``resume``) or joins afresh and publishes again
(``rejoin``, the baseline). Prints JSON lines with CLOCK_MONOTONIC times:

    {"event": "ready", "peer_id": ...}
    {"event": "changed", "t": ...}       the new route was seen
    {"event": "back", "t": ..., "peer_id": ...}

    python -m benchmarks.resume_device URL TOKEN resume|rejoin
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

from telemed_client import Client
from telemed_client.client import WATCH_INTERVAL
from telemed_client.ambulance import Tone


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def main(url: str, token: str, mode: str) -> None:
    client = await Client.join(url, token, auto_resume=mode == "resume")
    await client.publish(Tone(), "microphone", "Ambulance microphone")
    say(event="ready", peer_id=client.peer_id)
    if mode == "resume":
        client.on_resumed.append(lambda: say(event="back", t=time.monotonic(), peer_id=client.peer_id))
        route = await client._route()
        while await client._route() == route:
            await asyncio.sleep(WATCH_INTERVAL)  # when the client's own watchdog sees it, too
        say(event="changed", t=time.monotonic())
        await asyncio.Event().wait()  # the client's own watchdog resumes
    route = await client._route()
    while (now := await client._route()) == route or now is None:
        await asyncio.sleep(WATCH_INTERVAL)  # as often as the client's watchdog looks
    say(event="changed", t=time.monotonic())
    # The old connection cannot say goodbye over a network that is gone: drop it.
    asyncio.ensure_future(client.close())
    fresh = await Client.join(url, client.token, auto_resume=False)
    await fresh.publish(Tone(), "microphone", "Ambulance microphone")
    say(event="back", t=time.monotonic(), peer_id=fresh.peer_id)
    await asyncio.Event().wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(*sys.argv[1:4]))
