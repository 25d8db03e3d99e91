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
from collections import deque
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
# ECG frames kept until the server acknowledges them, for a resume to send again
# (docs/resume.md): five minutes at 25 frames/s; older ones are dropped, and counted.
MAX_UNACKED = 7500


class Clinical:
    """Sends and receives clinical data on a joined ``Client``.

    ``messages`` keeps every control-channel message in arrival order; ``ecg_frames``
    yields (arrival time.monotonic(), frame bytes) for every ECG frame relayed to us.

    Across a resume of the client (docs/resume.md) nothing is lost or doubled: ECG
    frames wait here until the server acknowledges them and are sent again on the new
    channel; labs and DICOM are sent again under the same ref / transfer id, which the
    server answers as before instead of sharing twice.
    """

    def __init__(self, client: Client) -> None:
        missing = [label for label in CHANNELS if label not in client.channels]
        if missing:
            raise ValueError(f"join with channels=CHANNELS; missing {missing}")
        self.client = client
        self.messages: list[dict] = []
        self.ecg_frames: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._unacked: dict[int, deque[tuple[int, bytes]]] = {}  # stream id -> (seq, frame)
        self.ecg_dropped = 0  # unacknowledged frames given up (more than MAX_UNACKED)
        self._hook()
        client.on_resumed.append(self._hook)

    @property
    def _acks(self) -> bool:
        """Whether the server acknowledges ECG frames (one that knows resume does)."""
        return "resume_grace" in self.client.info

    def _hook(self) -> None:
        """Follow the client's (new) channels."""
        self.bulk = self.client.channels["bulk"]
        self.ecg = self.client.channels["ecg"]
        self.bulk.bufferedAmountLowThreshold = LOW_WATER
        self.client.control.on("message", self._on_control)
        self.ecg.on("message", self._on_ecg)
        if self.ecg.readyState == "open":
            self._resend_ecg()
        else:
            self.ecg.on("open", self._resend_ecg)
        self._arrived.set()  # requests waiting for an answer send again

    def _resend_ecg(self) -> None:
        for frames in self._unacked.values():
            for _, data in list(frames):
                self.ecg.send(data)

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
            message = json.loads(raw)
            if message.get("type") == "ecg-ack":
                frames = self._unacked.get(message.get("stream_id"))
                while frames and frames[0][0] <= message["seq"]:
                    frames.popleft()
            self.messages.append(message)
            self._arrived.set()

    def _on_ecg(self, data: object) -> None:
        if isinstance(data, bytes):
            self.ecg_frames.put_nowait((time.monotonic(), data))

    async def wait_for(self, match: Callable[[dict], bool], timeout: float = 20,
                       start: int = 0, generation: int | None = None) -> dict:
        """The first control message from index ``start`` on that ``match``es; with
        ``generation``, _Resumed once the client resumed past it."""
        async def scan() -> dict:
            index = start
            while True:
                while index < len(self.messages):
                    index += 1
                    if match(self.messages[index - 1]):
                        return self.messages[index - 1]
                if generation is not None and self.client.generation != generation:
                    raise _Resumed
                self._arrived.clear()
                await self._arrived.wait()
        return await asyncio.wait_for(scan(), timeout)

    async def _request(self, message: dict, ref: object, match: Callable[[dict], bool],
                       timeout: float) -> dict:
        """Send ``message`` and return its answer, or ClientError if the server refused it.
        If the client resumes first, the message goes again (same ref: the server answers
        a repeat as before, and shares nothing twice)."""
        deadline = time.monotonic() + timeout
        while True:
            generation = self.client.generation
            await self._control_ready(deadline)
            start = len(self.messages)
            self.send(message)
            try:
                reply = await self.wait_for(
                    lambda m: match(m) or (m.get("type") == "error" and m.get("ref") == ref),
                    max(0.0, deadline - time.monotonic()), start, generation)
            except _Resumed:
                continue
            if reply["type"] == "error":
                raise ClientError(reply["code"], reply["error"])
            return reply

    async def _control_ready(self, deadline: float) -> None:
        """Wait for the (current) control channel to open, through resumes."""
        while self.client.control is None or self.client.control.readyState != "open":
            if time.monotonic() > deadline:
                raise asyncio.TimeoutError
            await asyncio.sleep(0.05)

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
        announce = {"type": "dicom-announce", "transfer_id": tid, "name": name, "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(), "chunk_count": count,
                    "chunk_size": CHUNK_SIZE}
        shared = self._own("dicom", transfer_id=tid)
        while True:  # once more, whole, after a resume cut the upload
            generation = self.client.generation
            start = len(self.messages)
            reply = await self._request(
                announce, tid, lambda m: shared(m) or (m.get("type") == "dicom-ready"
                                                       and m.get("transfer_id") == tid), timeout)
            if reply["type"] == "dicom":
                return reply  # it was shared before the connection went
            try:
                await self._upload(tid, data, count, max_rate, timeout, generation)
                self.send({"type": "dicom-complete", "transfer_id": tid})
                reply = await self.wait_for(
                    lambda m: shared(m) or (m.get("type") == "error" and m.get("ref") == tid),
                    timeout, start, generation)
            except _Resumed:
                continue
            if reply["type"] == "error":
                raise ClientError(reply["code"], reply["error"])
            return reply

    async def _upload(self, tid: str, data: bytes, count: int, max_rate: float | None, timeout: float,
                      generation: int) -> None:
        began = time.monotonic()
        bulk = self.bulk
        for index in range(count):
            if self.client.generation != generation or bulk.readyState != "open":
                raise _Resumed
            if bulk.bufferedAmount > HIGH_WATER:
                drained = asyncio.ensure_future(_drained(bulk))
                resumed = self.client.next_resume()
                await asyncio.wait_for(asyncio.wait({drained, resumed}, return_when=asyncio.FIRST_COMPLETED),
                                       timeout)
                drained.cancel()
                if resumed.done():
                    raise _Resumed
            if max_rate and (ahead := began + index * CHUNK_SIZE / max_rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            bulk.send(pack_chunk(tid, index, data[index * CHUNK_SIZE:(index + 1) * CHUNK_SIZE]))

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
        return await self._request(message, ref, lambda m: m.get("type") == "dicom-pull-done"
                                   and m.get("ref") == ref, timeout)

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
        await self._request({"type": "ecg-announce", "stream_id": sid, "leads": list(signal.leads),
                             "sample_rate": signal.sample_rate, "uv_per_lsb": signal.uv_per_lsb},
                            sid, self._own("ecg-announce", stream_id=sid), 20)
        self._unacked[sid] = deque()
        return sid

    async def stream_ecg(self, signal: EcgSignal, stream_id: int | None = None,
                         frame_seconds: float = FRAME_SECONDS, seconds: float | None = None,
                         on_sent: Callable[[int, float], None] | None = None) -> int:
        """Send ``signal`` in real time, a frame every ``frame_seconds``; returns frames sent.

        ``seconds`` loops the signal for that long (``math.inf``: until cancelled); by
        default it is sent once. ``on_sent(seq, time.monotonic())`` sees each frame go
        out. Frames count from seq 0 and stay here until the server acknowledges them
        (``ecg-ack``), so a resume sends again what the old connection lost. The stream
        is ended either way; on a normal return, once every frame is acknowledged and the
        server has confirmed the end (so closing the client right after loses nothing).
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
                self._send_frame(sid, seq, pack_ecg(sid, seq & 0xFFFFFFFF, sent, signal.sample_rate, chunk))
                if on_sent is not None:
                    on_sent(seq, time.monotonic())
                seq += 1
                sent += len(chunk)
        except BaseException:
            self._unacked.pop(sid, None)
            if self.client.control is not None and self.client.control.readyState == "open":
                self.send({"type": "ecg-end", "stream_id": sid})
            raise
        if self._acks:
            await self._acknowledged(sid, 60)
        ended = self._own("ecg-end", stream_id=sid)
        try:
            await self._request({"type": "ecg-end", "stream_id": sid}, sid, ended, 20)
        except ClientError as exc:
            # Sent again after a resume, when the first had ended it: it is over either way.
            if exc.code != "ecg-unknown-stream" or not any(ended(m) for m in self.messages):
                raise
        return seq

    def _send_frame(self, stream_id: int, seq: int, frame: bytes) -> None:
        """Keep it until acknowledged; send it now if the channel is up (else on resume)."""
        if self._acks:
            frames = self._unacked.setdefault(stream_id, deque())
            frames.append((seq, frame))
            if len(frames) > MAX_UNACKED:
                frames.popleft()
                self.ecg_dropped += 1
        if self.ecg.readyState == "open":
            self.ecg.send(frame)

    async def _acknowledged(self, stream_id: int, timeout: float) -> None:
        """Until the server has every frame of the stream (through resumes)."""
        async def drained() -> None:
            while self._unacked.get(stream_id):
                self._arrived.clear()
                await self._arrived.wait()
        await asyncio.wait_for(drained(), timeout)
        self._unacked.pop(stream_id, None)

    # --- lab results ---
    async def send_fhir(self, resource: dict, timeout: float = 20) -> dict:
        """Share a FHIR Observation, DiagnosticReport or Bundle; returns the lab notice."""
        ref = secrets.token_hex(6)
        return await self._request({"type": "lab-fhir", "resource": resource, "ref": ref}, ref,
                                   self._own("lab", source="fhir", ref=ref), timeout)

    async def send_hl7(self, message: str, timeout: float = 20) -> str:
        """Share an HL7 v2 ORU^R01; returns the ACK text."""
        ref = secrets.token_hex(6)
        reply = await self._request({"type": "lab-hl7", "message": message, "ref": ref}, ref,
                                    lambda m: m.get("type") == "lab-hl7-ack" and m.get("ref") == ref, timeout)
        return reply["ack"]

    async def send_report(self, template: str, findings: str, conclusion: str,
                          references: list[dict] | None = None, timeout: float = 20) -> dict:
        """Sign a consult report (a host or participant): ``references`` cite session entries,
        ``{"seq"}``, or ``{"seq", "start", "end"}`` for an ECG segment in seconds. Returns
        the report notice as everyone got it: the author and time are the server's."""
        ref = secrets.token_hex(6)
        message = {"type": "report", "template": template, "findings": findings, "conclusion": conclusion,
                   "references": references or [], "ref": ref}
        return await self._request(message, ref, self._own("report", ref=ref), timeout)


class _Resumed(Exception):
    """The client resumed while a request waited: send it again."""


async def _opened(channel: Any) -> None:
    if channel.readyState != "open":
        opened = asyncio.get_running_loop().create_future()
        channel.once("open", lambda: opened.done() or opened.set_result(None))
        await opened


async def _drained(channel: Any) -> None:
    drained = asyncio.get_running_loop().create_future()
    channel.once("bufferedamountlow", lambda: drained.done() or drained.set_result(None))
    await drained

