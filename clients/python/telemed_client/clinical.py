"""Clinical data from a Python seat or device: DICOM over ``bulk``, ECG over ``ecg``,
lab results over ``control`` (docs/signaling.md, "Clinical data").

    client = await Client.join(url, token, channels=CHANNELS)
    clinical = await Clinical.open(client)
    notice = await clinical.send_dicom(data, "ct.dcm")
    done = await clinical.pull_dicom(study_uid)   # from the server's PACS
    await clinical.stream_ecg(synthetic(12, 500, 10))
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from .client import Client, ClientError
from .ecg_sources import EcgSignal
from .wire import CHUNK_SIZE, pack_chunk, pack_ecg

# Unordered (still reliable) ECG: a lost packet delays only its own frame, not every
# frame behind it while SCTP retransmits. Receivers order frames by seq/first_sample.
CHANNELS = {"bulk": {}, "ecg": {"ordered": False}}
# Pause a DICOM upload while more than HIGH_WATER bytes wait to leave, resume below
# LOW_WATER. aiortc sends all channels of a connection from one queue, so this bound
# is also how long this device's ECG frames can wait behind image chunks.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
FRAME_SECONDS = 0.04


class Clinical:
    """Sends and receives clinical data on a joined ``Client``.

    ``messages`` keeps every control-channel message in arrival order; ``ecg_frames``
    yields (arrival time.monotonic(), frame bytes) for every ECG frame relayed to us.
    """

    def __init__(self, client: Client) -> None:
        missing = [label for label in CHANNELS if label not in client.channels]
        if missing:
            raise ValueError(f"join with channels=CHANNELS; missing {missing}")
        self.client = client
        self.bulk = client.channels["bulk"]
        self.ecg = client.channels["ecg"]
        self.bulk.bufferedAmountLowThreshold = LOW_WATER
        self.messages: list[dict] = []
        self.ecg_frames: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self._arrived = asyncio.Event()
        client.control.on("message", self._on_control)
        self.ecg.on("message", self._on_ecg)

    @classmethod
    async def open(cls, client: Client, timeout: float = 20) -> Clinical:
        """Wrap ``client`` and wait until its data channels are open (negotiating if
        nothing has been offered yet)."""
        clinical = cls(client)
        if client.pc.remoteDescription is None:
            await client.negotiate()
        channels = (client.control, clinical.bulk, clinical.ecg)
        await asyncio.wait_for(asyncio.gather(*(_opened(c) for c in channels)), timeout)
        return clinical

    # --- receiving ---
    def _on_control(self, raw: object) -> None:
        if isinstance(raw, str):
            self.messages.append(json.loads(raw))
            self._arrived.set()

    def _on_ecg(self, data: object) -> None:
        if isinstance(data, bytes):
            self.ecg_frames.put_nowait((time.monotonic(), data))

    async def wait_for(self, match: Callable[[dict], bool], timeout: float = 20,
                       start: int = 0) -> dict:
        """The first control message from index ``start`` on that ``match``es."""
        async def scan() -> dict:
            index = start
            while True:
                while index < len(self.messages):
                    index += 1
                    if match(self.messages[index - 1]):
                        return self.messages[index - 1]
                self._arrived.clear()
                await self._arrived.wait()
        return await asyncio.wait_for(scan(), timeout)

    async def _reply(self, ref: object, match: Callable[[dict], bool], start: int,
                     timeout: float) -> dict:
        """The message that answers a request, or ClientError if the server refused it."""
        reply = await self.wait_for(
            lambda m: match(m) or (m.get("type") == "error" and m.get("ref") == ref), timeout, start)
        if reply["type"] == "error":
            raise ClientError(reply["code"], reply["error"])
        return reply

    def _own(self, kind: str, **fields: Any) -> Callable[[dict], bool]:
        """Matches our own item coming back from the server's fan-out."""
        me = self.client.peer_id
        return lambda m: (m.get("type") == kind and m.get("sender") == me
                          and all(m.get(k) == v for k, v in fields.items()))

    def send(self, message: dict) -> None:
        self.client.control.send(json.dumps(message))

    # --- DICOM ---
    async def send_dicom(self, data: bytes, name: str, transfer_id: str | None = None,
                         max_rate: float | None = None, timeout: float = 120) -> dict:
        """Upload one file; returns the server's notice (sha256, links) once it is shared.

        ``max_rate`` (bytes/s) paces the upload. Backpressure alone bounds what waits in
        this client, not what is in flight: between aiortc peers on a fast link SCTP
        then sends up to its 1 MiB window in one burst, which a server spends a long
        uninterrupted stretch decrypting while its other peers' ECG waits.
        """
        tid = transfer_id or f"t-{secrets.token_hex(6)}"
        count = max(1, math.ceil(len(data) / CHUNK_SIZE))
        start = len(self.messages)
        self.send({"type": "dicom-announce", "transfer_id": tid, "name": name, "size": len(data),
                   "sha256": hashlib.sha256(data).hexdigest(), "chunk_count": count,
                   "chunk_size": CHUNK_SIZE})
        await self._reply(tid, lambda m: m.get("type") == "dicom-ready" and m.get("transfer_id") == tid,
                          start, timeout)
        began = time.monotonic()
        for index in range(count):
            if self.bulk.bufferedAmount > HIGH_WATER:
                await asyncio.wait_for(_drained(self.bulk), timeout)
            if max_rate and (ahead := began + index * CHUNK_SIZE / max_rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            self.bulk.send(pack_chunk(tid, index, data[index * CHUNK_SIZE:(index + 1) * CHUNK_SIZE]))
        self.send({"type": "dicom-complete", "transfer_id": tid})
        return await self._reply(tid, self._own("dicom", transfer_id=tid), start, timeout)

    async def pull_dicom(self, study_uid: str, series_uid: str | None = None,
                         instance_uid: str | None = None, timeout: float = 120) -> dict:
        """Have the server pull a study (or one series, or one instance) from its PACS into
        the room; returns ``dicom-pull-done`` (``count``, ``refused``). Each shared
        instance arrives as a ``dicom`` notice with ``source: "pacs"`` and this ``ref``."""
        ref = f"p-{secrets.token_hex(6)}"
        message = {"type": "dicom-pull", "study_uid": study_uid, "ref": ref}
        if series_uid is not None:
            message["series_uid"] = series_uid
        if instance_uid is not None:
            message["instance_uid"] = instance_uid
        start = len(self.messages)
        self.send(message)
        return await self._reply(ref, lambda m: m.get("type") == "dicom-pull-done" and m.get("ref") == ref,
                                 start, timeout)

    async def fetch(self, link: str) -> bytes:
        """GET a link from a notice (relative to the server), e.g. ``notice["url"]``."""
        async with aiohttp.ClientSession() as session:
            async with session.get(self.client.base_url + link) as response:
                body = await response.read()
                if response.status != 200:
                    error = json.loads(body or b"{}")
                    raise ClientError(error.get("code", str(response.status)), error.get("error", ""))
                return body

    # --- ECG ---
    async def announce_ecg(self, signal: EcgSignal, stream_id: int | None = None) -> int:
        """Start a stream; returns its id once the server has accepted it."""
        sid = secrets.randbelow(2**32) if stream_id is None else stream_id
        start = len(self.messages)
        self.send({"type": "ecg-announce", "stream_id": sid, "leads": list(signal.leads),
                   "sample_rate": signal.sample_rate, "uv_per_lsb": signal.uv_per_lsb})
        await self._reply(sid, self._own("ecg-announce", stream_id=sid), start, 20)
        return sid

    async def stream_ecg(self, signal: EcgSignal, stream_id: int | None = None,
                         frame_seconds: float = FRAME_SECONDS, seconds: float | None = None,
                         on_sent: Callable[[int, float], None] | None = None) -> int:
        """Send ``signal`` in real time, a frame every ``frame_seconds``; returns frames sent.

        ``seconds`` loops the signal for that long (``math.inf``: until cancelled); by
        default it is sent once. ``on_sent(seq, time.monotonic())`` sees each frame go
        out. The stream is ended either way; on a normal return, once the server has
        confirmed it (so closing the client right after loses nothing).
        """
        sid = await self.announce_ecg(signal, stream_id)
        per_frame = max(1, round(frame_seconds * signal.sample_rate))
        seq = sent = 0  # frames and samples so far
        total = len(signal.samples) if seconds is None else seconds * signal.sample_rate
        begin = time.monotonic()
        try:
            while sent < total:
                offset = sent % len(signal.samples)  # wraps around when looping
                chunk = signal.samples[offset:offset + per_frame]
                # A frame leaves once its last sample would exist on a real device.
                delay = begin + (sent + len(chunk)) / signal.sample_rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.ecg.send(pack_ecg(sid, seq & 0xFFFFFFFF, sent, signal.sample_rate, chunk))
                if on_sent is not None:
                    on_sent(seq, time.monotonic())
                seq += 1
                sent += len(chunk)
        except BaseException:
            if self.client.control.readyState == "open":
                self.send({"type": "ecg-end", "stream_id": sid})
            raise
        start = len(self.messages)
        self.send({"type": "ecg-end", "stream_id": sid})
        await self._reply(sid, self._own("ecg-end", stream_id=sid), start, 20)
        return seq

    # --- lab results ---
    async def send_fhir(self, resource: dict, timeout: float = 20) -> dict:
        """Share a FHIR Observation, DiagnosticReport or Bundle; returns the lab notice."""
        ref = secrets.token_hex(6)
        start = len(self.messages)
        self.send({"type": "lab-fhir", "resource": resource, "ref": ref})
        return await self._reply(ref, self._own("lab", source="fhir"), start, timeout)

    async def send_hl7(self, message: str, timeout: float = 20) -> str:
        """Share an HL7 v2 ORU^R01; returns the ACK text."""
        ref = secrets.token_hex(6)
        start = len(self.messages)
        self.send({"type": "lab-hl7", "message": message, "ref": ref})
        reply = await self._reply(ref, lambda m: m.get("type") == "lab-hl7-ack" and m.get("ref") == ref,
                                  start, timeout)
        return reply["ack"]

    async def send_report(self, template: str, findings: str, conclusion: str,
                          references: list[dict] | None = None, timeout: float = 20) -> dict:
        """Sign a consult report (a host or participant): ``references`` cite session entries,
        ``{"seq"}``, or ``{"seq", "start", "end"}`` for an ECG segment in seconds. Returns
        the report notice as everyone got it: the author and time are the server's."""
        ref = secrets.token_hex(6)
        start = len(self.messages)
        self.send({"type": "report", "template": template, "findings": findings, "conclusion": conclusion,
                   "references": references or [], "ref": ref})
        return await self._reply(ref, self._own("report"), start, timeout)


async def _opened(channel: Any) -> None:
    if channel.readyState != "open":
        opened = asyncio.get_running_loop().create_future()
        channel.once("open", lambda: opened.done() or opened.set_result(None))
        await opened


async def _drained(channel: Any) -> None:
    drained = asyncio.get_running_loop().create_future()
    channel.once("bufferedamountlow", lambda: drained.done() or drained.set_result(None))
    await drained

