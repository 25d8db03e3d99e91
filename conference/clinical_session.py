"""The clinical side of a live room: DICOM, ECG and lab messages, checked, logged, shared.

Every message is checked by ``clinical/`` first. A refused one gets an ``error`` back on
its sender's control channel and reaches nobody else. An accepted one is audited, then
stamped by the session log (seq, monotonic t) and synced to disk, folded into the
late-joiner state, and only then fanned out and acknowledged (``_share``). A disk that
refuses either write answers the sender ``storage-unavailable``, and nobody else hears
of the item:

* labs and DICOM notices to everyone's ``control`` channel, the sender's included (its
  receipt); a DICOM object travels as a reference with per-person signed links;
* ECG frames as they are, to every other peer's ``ecg`` channel (``EcgRelay``).

A DICOM object enters either by upload on ``bulk`` or by a ``dicom-pull`` from the
configured PACS; both take the same path from validation on (``_accept_dicom``).

Wire formats are in docs/signaling.md ("Clinical data").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clinical.actor import Actor
from clinical.consult_report import draft, seal
from clinical.deidentify import Deidentifier
from clinical.dicom_transfer import (
    DEFAULT_MAX_SIZE,
    DicomTransfers,
    ReceivedObject,
    TransferAnnounce,
    unpack_chunk,
)
from clinical.dicom_validate import DicomObject, read_dicom
from clinical.ecg import EcgAnnounce, parse_end, unpack_frame
from clinical.errors import ClinicalError
from clinical.fields import reject_unknown
from clinical.hl7v2 import nack_for, parse_oru_r01
from clinical.lab_result import LabResult, RefusedResult
from clinical.labs import parse_fhir
from clinical.pacs import DicomWebSource, PullRequest
from clinical.session_log import SessionLog
from clinical.session_state import SessionState
from clinical.storage import StorageUnavailable, storing

from .ecg_relay import EcgRelay

if TYPE_CHECKING:
    from .clinical_hub import ClinicalHub
    from .live_room import LiveRoom
    from .peer import Peer

log = logging.getLogger("telemed.clinical")

CHANNELS = frozenset({"bulk", "ecg"})
MESSAGE_TYPES = frozenset(
    {"dicom-announce", "dicom-complete", "dicom-pull", "ecg-announce", "ecg-end", "lab-fhir", "lab-hl7", "report"}
)
# Above the chat limit (a FHIR Bundle can be large), below what aiortc accepts (256 KiB).
MAX_MESSAGE = 192 * 1024
MAX_DICOM = DEFAULT_MAX_SIZE  # 64 MiB, uploaded or pulled from a PACS
# Each pull holds a PACS connection and queues its instances behind the room's intake.
MAX_PULLS = 2
# Resume (docs/resume.md): ECG frames are acknowledged to their sender at most this often,
# and this many answers to labs and DICOM are kept for senders that retry after a resume.
ECG_ACK_INTERVAL = 0.25
MAX_RECEIPTS = 256


@dataclass(frozen=True)
class Sender:
    """Who sent something, kept apart from the Peer, which may leave mid-processing."""

    peer_id: str
    identity: str
    name: str
    actor: Actor

    @classmethod
    def of(cls, peer: Peer) -> Sender:
        return cls(peer.id, peer.identity, peer.name, peer.actor)


class _Uploads:
    """One sender's DICOM transfers. After a transfer fails, its remaining chunks (up to
    a thousand in flight) are dropped quietly: the sender has heard of it once."""

    def __init__(self) -> None:
        self.transfers = DicomTransfers(max_size=MAX_DICOM)
        self._failed: deque[str] = deque(maxlen=16)

    def announce(self, message: dict) -> TransferAnnounce:
        announce = self.transfers.announce(message)
        if announce.transfer_id in self._failed:
            self._failed.remove(announce.transfer_id)
        return announce

    def add_frame(self, data: bytes) -> ReceivedObject | None:
        try:
            return self.transfers.add_frame(data)
        except ClinicalError:
            transfer_id = _chunk_transfer_id(data)
            if transfer_id in self._failed:
                return None
            if transfer_id is not None:
                self._failed.append(transfer_id)
            raise

    def complete(self, message: dict) -> ReceivedObject | None:
        try:
            return self.transfers.complete(message)
        except ClinicalError:
            self._failed.append(str(message.get("transfer_id")))
            raise


class ClinicalSession:
    def __init__(self, hub: ClinicalHub, room: LiveRoom, directory: Path,
                 carried: frozenset[str] = frozenset()) -> None:
        """Its state is read back from the room's session log. ``carried``: peer ids of
        seats taken over from a node that died (docs/multinode.md "A node lost")."""
        self.hub = hub
        self.room = room
        self.directory = directory
        self.log = SessionLog(directory / "session.jsonl", ring=hub.ring)
        entries = list(self.log.read())
        self.state = SessionState.replay(entries)
        self.ecg = EcgRelay()
        self.closed = False
        self._uploads: dict[str, _Uploads] = {}
        # One pseudonym mapping per consult: objects of one patient stay linked.
        self._deidentifier = Deidentifier()
        self._intake = asyncio.Lock()  # one DICOM at a time: 2 cores, shared with media
        self._tasks: set[asyncio.Task] = set()
        self._pulls = 0  # PACS pulls under way
        # Counter of de-identified file names; continues after a restart.
        self._deidentified = sum(1 for d in self.state.snapshot()["dicom"] if d.get("deidentified"))
        # Retries after a resume: what was answered (peer id, kind, ref) -> the answer,
        # and what is still being processed (its answer goes to the resumed peer).
        self._receipts: OrderedDict[tuple[str, str, object], dict] = OrderedDict()
        self._pending: set[tuple[str, str, object]] = set()
        self._acks: dict[tuple[str, int], asyncio.TimerHandle] = {}  # ECG acks due
        # Seats carried over from a node that died may send again what it never answered.
        for entry in entries:
            if entry["sender"] in carried:
                self._keep_receipt(entry)
        # Streams the log still shows live were cut by a crash: those of seats carried
        # over from a node that died go on (their senders resend what was not
        # acknowledged); the others end, for replay.
        for stream in self.state.snapshot()["ecg_streams"]:
            if stream["sender"] in carried:
                self._continue_stream(stream)
            else:
                self._append_quietly("ecg-end", stream["sender"], {"stream_id": stream["stream_id"]})

    # --- peers ---
    def joined(self, peer: Peer) -> None:
        # Deferred one loop turn so that it follows the `joined` reply on the WebSocket.
        asyncio.get_running_loop().call_soon(lambda: peer.notify(self._state_for(peer)))

    def control_opened(self, peer: Peer) -> None:
        peer.send_data(self._state_for(peer))
        # A resumed sender learns what arrived and resends the rest of its ECG.
        for stream_id in self.ecg.owned_by(peer.id):
            peer.send_data(self._ecg_ack(peer.id, stream_id))

    def attach(self, peer: Peer, channel: Any) -> None:
        """Take over a peer's ``bulk`` or ``ecg`` data channel."""
        if channel.label == "bulk":
            channel.on("message", lambda data: self._on_bulk(peer, data))
        else:
            self.ecg.attach(peer.id, channel)
            channel.on("message", lambda data: self._on_ecg(peer, data))

    def suspended(self, peer: Peer) -> None:
        """Its connection went, and it may resume: its ECG streams stay live (it resends
        what we did not acknowledge); partial uploads on the dead channel are dropped
        (it announces them again)."""
        self._uploads.pop(peer.id, None)
        self.ecg.detach(peer.id)

    def left(self, peer: Peer) -> None:
        self._uploads.pop(peer.id, None)
        dropped = self.ecg.detach(peer.id)
        if dropped:
            log.info("peer %s missed %d ECG frames while slow", peer.id, dropped)
        sender = Sender.of(peer)
        for stream_id in self.ecg.owned_by(peer.id):
            try:
                self._end_stream(sender, stream_id, "disconnected")
            except StorageUnavailable as exc:  # over either way; replay ends it at the log's end
                log.error("ECG stream end not logged in %s: %s", self.room.name, exc.message)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in self._tasks:
            task.cancel()
        for timer in self._acks.values():
            timer.cancel()
        self.ecg.close_all()
        self.log.close()
        self.hub.session_closed(self)

    # --- control channel ---
    def take(self, peer: Peer, raw: object) -> bool:
        """Handle ``raw`` if it is a clinical message; False leaves it to the chat relay."""
        message = _clinical_message(raw)
        if message is None:
            return False
        try:
            _check_may_share(peer)
            self._handle(peer, message)
        except ClinicalError as exc:
            self._refuse(peer.id, exc, _ref(message))
        except Exception:
            log.exception("clinical message %s from %s failed", message["type"], peer.id)
            self._refuse(peer.id, ClinicalError("internal", "message not processed"), _ref(message))
        return True

    def _handle(self, peer: Peer, message: dict) -> None:
        kind = message["type"]
        sender = Sender.of(peer)
        if kind in ("lab-fhir", "lab-hl7", "dicom-announce", "report") and self._repeated(peer, kind, _ref(message)):
            return
        if kind == "dicom-announce":
            announce = self._uploads_of(peer).announce(message)
            peer.send_data({"type": "dicom-ready", "transfer_id": announce.transfer_id})
        elif kind == "dicom-complete":
            self._received(sender, self._uploads_of(peer).complete(message))
        elif kind == "dicom-pull":
            self._start_pull(sender, PullRequest.from_message(message))
        elif kind == "ecg-announce":
            self._start_stream(sender, EcgAnnounce.from_message(message))
        elif kind == "ecg-end":
            self._end_stream(sender, parse_end(message), "ended")
        elif kind == "report":
            _check_may_report(peer)
            reject_unknown(message, {"type", "template", "findings", "conclusion", "references", "ref"}, "report")
            self._spawn(self._share_report(sender, peer.claims.role.value, message,
                                           self._begin(peer.id, "report", _ref(message))))
        elif kind == "lab-fhir":
            reject_unknown(message, {"type", "resource", "ref"}, "lab-fhir")
            labs = parse_fhir(message.get("resource"))
            self._spawn(self._share_labs(sender, labs.results, labs.refused, "fhir", _ref(message),
                                         key=self._begin(peer.id, "lab-fhir", _ref(message))))
        else:
            self._lab_hl7(peer, sender, message)

    def _lab_hl7(self, peer: Peer, sender: Sender, message: dict) -> None:
        reject_unknown(message, {"type", "message", "ref"}, "lab-hl7")
        text = message.get("message")
        try:
            labs = parse_oru_r01(text)
        except ClinicalError as exc:
            nack = nack_for(text, exc) if isinstance(text, str) else None
            self._refuse(peer.id, exc, _ref(message), ack=nack)
            return
        self._spawn(self._share_labs(sender, labs.results, labs.refused, "hl7v2", _ref(message), text, labs.ack,
                                     key=self._begin(peer.id, "lab-hl7", _ref(message))))

    async def _share_labs(self, sender: Sender, results: list[LabResult], refused: list[RefusedResult],
                          source: str, ref: object, hl7: str | None = None, ack: str | None = None,
                          key: tuple[str, str, object] | None = None) -> None:
        """The HL7 ACK (and everyone's notice, the sender's receipt) only once the
        results are audited and synced to the session log. Results left out of the
        message are listed in the notice (``refused``) with their reasons."""
        body = {"results": [r.to_dict() for r in results], "source": source,
                "refused": [r.to_dict() for r in refused]}
        digest = _sha256(json.dumps(body, sort_keys=True).encode())
        try:
            entry = await self._share(sender, "lab", body, f"lab/{digest[:32]}", ref=ref, ack=ack, source=source,
                                      loinc=[r.loinc for r in results])
            if entry is None:
                return
        except ClinicalError as exc:
            self._end(key)
            nack = nack_for(hl7, exc) if hl7 is not None else None
            self._refuse(sender.peer_id, exc, ref, **({"ack": nack} if nack else {}))
            return
        except Exception:
            self._end(key)
            log.exception("lab results from %s failed", sender.peer_id)
            self._refuse(sender.peer_id, ClinicalError("internal", "results not processed"), ref)
            return
        if ack is not None:
            reply = {"type": "lab-hl7-ack", "ack": ack, "ref": ref}
            self._end(key, reply)
            self._reply(sender.peer_id, reply)
        else:
            self._end(key, self._notice(entry, sender.identity, ref))

    # --- the consult report ---
    async def _share_report(self, sender: Sender, role: str, message: dict,
                            key: tuple[str, str, object] | None) -> None:
        """Checked against the log, signed with the author the token names, then on record
        like any share (a retry with the same ref gets the same answer, nothing signed
        twice); pushed to the hospital's FHIR server afterwards, if one is set."""
        ref = _ref(message)
        try:
            entries = {e["seq"]: e for e in await asyncio.to_thread(lambda: list(self.log.read()))}
            content = draft(message, entries)
            report = seal(content, {"identity": sender.identity, "name": sender.name, "role": role},
                          self.hub.reports)
            entry = await self._share(sender, "report", report, f"report/{report['signature'][:32]}", ref=ref,
                                      action="report-signed", template=report["template"],
                                      references=[r["seq"] for r in report["references"]])
        except ClinicalError as exc:
            self._end(key)
            self._refuse(sender.peer_id, exc, ref)
            return
        except Exception:
            self._end(key)
            log.exception("report from %s failed", sender.peer_id)
            self._refuse(sender.peer_id, ClinicalError("internal", "report not processed"), ref)
            return
        self._end(key, None if entry is None else self._notice(entry, sender.identity, ref))
        if entry is not None and self.hub.report_push is not None:
            await self._push_report(sender, entry, {**entries, entry["seq"]: entry})

    async def _push_report(self, sender: Sender, entry: dict, entries: dict) -> None:
        push = self.hub.report_push
        assert push is not None
        outcome = await push.send(self.room.name, entry, entries)
        action = "report-pushed" if outcome.get("ok") else "report-push-failed"
        await self.hub.audit.record(action, sender.actor, self.room.name, f"report/{self.room.name}/{entry['seq']}",
                                    **outcome)
        self._reply(sender.peer_id, {"type": "report-pushed", "seq": entry["seq"], **outcome})

    # --- ECG ---
    def _start_stream(self, sender: Sender, announce: EcgAnnounce) -> None:
        recording = f"ecg/{sender.peer_id}-{announce.stream_id}-{time.monotonic_ns()}.ecg"
        with storing("the ECG recording"):
            self.ecg.open(sender.peer_id, announce, lambda: self.hub.open_recording(self.directory / recording))
        body = {k: v for k, v in announce.to_message().items() if k != "type"}
        self._spawn(self._announce_stream(sender, announce.stream_id, {**body, "recording": recording},
                                          len(announce.leads)))

    async def _announce_stream(self, sender: Sender, stream_id: int, body: dict, leads: int) -> None:
        try:
            await self._share(sender, "ecg-announce", body, f"ecg/{body['recording']}", action="stream",
                              stream_id=stream_id, leads=leads)
        except Exception as exc:
            if not isinstance(exc, ClinicalError):
                log.exception("ECG announce from %s failed", sender.peer_id)
                exc = ClinicalError("internal", "stream not started")
            if stream_id in self.ecg.owned_by(sender.peer_id):
                self.ecg.close(sender.peer_id, stream_id)
            self._refuse(sender.peer_id, exc, stream_id)

    def _continue_stream(self, stream: dict) -> None:
        """A stream that was live on a node that died goes on here, recorded into a file
        of its own that a new ``ecg-announce`` entry names (``continues``: the first
        one's seq), as a stream started anew would be, so that replay finds both parts."""
        sender, stream_id = stream["sender"], stream["stream_id"]
        announce = EcgAnnounce(stream_id, tuple(stream["leads"]), stream["sample_rate"], stream["uv_per_lsb"])
        recording = f"ecg/{sender}-{stream_id}-{time.monotonic_ns()}.ecg"
        body = {k: v for k, v in announce.to_message().items() if k != "type"}
        try:
            with storing("the ECG recording"):
                self.ecg.open(sender, announce, lambda: self.hub.open_recording(self.directory / recording),
                              carried=True)
            self._append("ecg-announce", sender, {**body, "recording": recording, "continues": stream["seq"],
                                                  "sender_name": stream.get("sender_name", "")})
        except ClinicalError as exc:  # a refusing disk: the stream ends, as if nobody resumed it
            log.error("ECG stream %s not carried on in %s: %s", stream_id, self.room.name, exc.message)
            if stream_id in self.ecg.owned_by(sender):
                self.ecg.close(sender, stream_id)
            self._append_quietly("ecg-end", sender, {"stream_id": stream_id})

    def _end_stream(self, sender: Sender, stream_id: int, reason: str) -> None:
        stats = self.ecg.close(sender.peer_id, stream_id)
        self._publish(sender, "ecg-end", {"stream_id": stream_id, "reason": reason, **stats})

    def _on_ecg(self, peer: Peer, data: object) -> None:
        try:
            _check_may_share(peer)
            if not isinstance(data, bytes):
                raise ClinicalError("ecg-frame", "the ecg channel carries binary frames only")
            frame = unpack_frame(data)
            gaps = self.ecg.forward(peer.id, frame, data)
        except ClinicalError as exc:
            self._refuse(peer.id, exc, _frame_stream_id(data))
            return
        if gaps is None:
            return  # resent after a resume, and we have it already
        self._ack_soon(peer.id, frame.stream_id)
        for gap in gaps:  # not acknowledged to anyone: synced with the next durable entry
            self._append_quietly("ecg-gap", peer.id, {"stream_id": frame.stream_id, "kind": gap.kind,
                                                      "expected": gap.expected, "got": gap.got}, durable=False)

    def _ack_soon(self, peer_id: str, stream_id: int) -> None:
        key = (peer_id, stream_id)
        if key not in self._acks:
            self._acks[key] = asyncio.get_running_loop().call_later(ECG_ACK_INTERVAL, self._send_ack, key)

    def _send_ack(self, key: tuple[str, int]) -> None:
        self._acks.pop(key, None)
        if key[1] in self.ecg.owned_by(key[0]):
            self._reply(key[0], self._ecg_ack(*key))

    def _ecg_ack(self, peer_id: str, stream_id: int) -> dict:
        """Every frame up to ``seq`` arrived (and is recorded): the sender may forget them."""
        return {"type": "ecg-ack", "stream_id": stream_id, "seq": self.ecg.acked(peer_id, stream_id)}

    # --- retries after a resume ---
    def _repeated(self, peer: Peer, kind: str, ref: object) -> bool:
        """A request this peer sent before (same kind and ref): answer it as before, or
        not at all while the first is still being processed."""
        key = (peer.id, "dicom" if kind == "dicom-announce" else kind, ref)
        if ref is None:
            return False
        if key in self._receipts:
            reply = self._receipts[key]
            if reply.get("type") == "dicom":  # links of its own, and fresh
                reply = {**reply, **self._links(reply["sha256"], peer.identity)}
            peer.send_data(reply)
            return True
        return key in self._pending

    def _begin(self, peer_id: str, kind: str, ref: object) -> tuple[str, str, object] | None:
        """Mark a request being processed; returns the key its answer is kept under."""
        if ref is None:
            return None
        key = (peer_id, kind, ref)
        self._pending.add(key)
        return key

    def _keep_receipt(self, entry: dict) -> None:
        """The answer its sender got for a log entry, kept as ``_end`` keeps it."""
        body, ref = entry["body"], (entry.get("receipt") or {}).get("ref")
        if entry["kind"] == "dicom" and body.get("source") == "upload":
            self._end((entry["sender"], "dicom", body.get("transfer_id")), self._notice(entry, None))
        elif entry["kind"] == "lab" and ref is not None and "ack" in entry["receipt"]:
            self._end((entry["sender"], "lab-hl7", ref),
                      {"type": "lab-hl7-ack", "ack": entry["receipt"]["ack"], "ref": ref})
        elif entry["kind"] in ("lab", "report") and ref is not None:
            self._end((entry["sender"], "lab-fhir" if entry["kind"] == "lab" else "report", ref),
                      self._notice(entry, None, ref))

    def _end(self, key: tuple[str, str, object] | None, reply: dict | None = None) -> None:
        """Processed: keep its answer for a retry (a refusal is not kept: retry it)."""
        if key is None:
            return
        self._pending.discard(key)
        if reply is not None:
            self._receipts[key] = reply
            while len(self._receipts) > MAX_RECEIPTS:
                self._receipts.popitem(last=False)

    # --- DICOM ---
    def _on_bulk(self, peer: Peer, data: object) -> None:
        try:
            _check_may_share(peer)
            if not isinstance(data, bytes):
                raise ClinicalError("dicom-chunk", "the bulk channel carries binary chunks only")
            self._received(Sender.of(peer), self._uploads_of(peer).add_frame(data))
        except ClinicalError as exc:
            self._refuse(peer.id, exc, _chunk_transfer_id(data))

    def _received(self, sender: Sender, received: ReceivedObject | None) -> None:
        if received is not None:
            key = self._begin(sender.peer_id, "dicom", received.announce.transfer_id)
            self._spawn(self._share_upload(sender, received, key))

    async def _share_upload(self, sender: Sender, received: ReceivedObject,
                            key: tuple[str, str, object] | None) -> None:
        announce = received.announce
        origin = {"source": "upload", "transfer_id": announce.transfer_id}
        try:
            entry = await self._accept_dicom(sender, received.data, announce.sha256, origin, announce.name)
            self._end(key, self._notice(entry, sender.identity) if entry is not None else None)
        except ClinicalError as exc:
            self._end(key)
            self._refuse(sender.peer_id, exc, announce.transfer_id)
        except Exception:
            self._end(key)
            log.exception("DICOM %s from %s failed", announce.transfer_id, sender.peer_id)
            self._refuse(sender.peer_id, ClinicalError("internal", "object not processed"),
                         announce.transfer_id)

    async def _accept_dicom(self, sender: Sender, data: bytes, received_sha256: str, origin: dict,
                            name: str | None = None, **audit: Any) -> dict | None:
        """The one way into the room for a DICOM object, uploaded or pulled from a PACS:
        validate, de-identify if the room requires it, store, log, fan out, audit.

        ``origin`` goes into the notice (``source`` and what the sender can match it
        by). Its log entry; None if the room closed meanwhile; ClinicalError if the object
        is refused.
        """
        try:
            deidentify = await self.hub.requires_deidentification(self.room.name)
            async with self._intake:
                shared, obj = await asyncio.to_thread(self._intake_dicom, data, deidentify)
                sha256 = await asyncio.to_thread(self.hub.objects.put, shared)
        except ClinicalError as exc:
            await self.hub.audit.record("share-refused", sender.actor, self.room.name, received_sha256,
                                        name=name, code=exc.code, **origin, **audit)
            raise
        if self.closed:
            return None
        if obj.kind == "image":  # viewers ask for frame 0 as soon as they hear of it
            self.hub.previews.prime(sha256, obj.dataset)
        # Named after what is shared: the uploader's file name often carries the
        # patient's (and a de-identified copy must not show the original UID).
        name = self._deidentified_name(obj) if deidentify else name or f"{obj.sop_instance_uid}.dcm"
        body = {"sha256": sha256, "name": name, "size": len(shared), "deidentified": deidentify, **origin,
                "object": obj.to_dict()}
        return await self._share(sender, "dicom", body, sha256, name=name, received_sha256=received_sha256,
                                 deidentified=deidentify, sop_class=obj.sop_class_uid, **origin, **audit)

    def _deidentified_name(self, obj: DicomObject) -> str:
        """Modality, the (shifted) study date and a counter: "CT_20190412_3.dcm"."""
        self._deidentified += 1
        date = str(obj.dataset.get("StudyDate", "") or "").strip()
        parts = [obj.modality or "DICOM", date if date.isdigit() else "", str(self._deidentified)]
        return "_".join(p for p in parts if p) + ".dcm"

    # --- PACS ---
    def _start_pull(self, sender: Sender, request: PullRequest) -> None:
        if self.hub.pacs is None:
            raise ClinicalError("pacs-off", "no PACS is configured on this server")
        if self._pulls >= MAX_PULLS:
            raise ClinicalError("pacs-busy", f"at most {MAX_PULLS} PACS pulls at a time in a room")
        self._pulls += 1
        self._spawn(self._pull(self.hub.pacs, sender, request))

    async def _pull(self, pacs: DicomWebSource, sender: Sender, request: PullRequest) -> None:
        """Share every instance the PACS returns, one by one as they arrive. An instance
        that fails the checks is skipped and reported; a PACS failure ends the pull."""
        count, refused = 0, []
        origin = {"source": "pacs", "ref": request.ref}
        try:
            async with aclosing(pacs.instances(request)) as instances:
                async for data in instances:
                    try:
                        digest = await asyncio.to_thread(_sha256, data)
                        if await self._accept_dicom(sender, data, digest, origin,
                                                    study_uid=request.study_uid) is not None:
                            count += 1
                    except ClinicalError as exc:
                        refused.append({"code": exc.code, "error": exc.message})
            reply = {"type": "dicom-pull-done", "ref": request.ref, "count": count, "refused": refused}
        except ClinicalError as exc:
            log.warning("PACS pull of a %s failed: %s (%r)", request.what, exc.code, exc.__cause__)
            reply = _error(exc, request.ref, count=count)
        except Exception:
            log.exception("PACS pull for %s failed", sender.peer_id)
            reply = _error(ClinicalError("internal", "pull not completed"), request.ref, count=count)
        finally:
            self._pulls -= 1  # before the answer: whoever hears it may pull again at once
        try:  # audited before the answer, so that an answered pull is on record
            await self.hub.audit.record(
                "pacs-pull", sender.actor, self.room.name, request.study_uid, series_uid=request.series_uid,
                instance_uid=request.instance_uid, count=count, refused=len(refused),
                outcome=reply.get("code", "done"),
            )
        finally:
            self._reply(sender.peer_id, reply)

    def _intake_dicom(self, data: bytes, deidentify: bool) -> tuple[bytes, DicomObject]:
        """In a worker thread: validate, de-identify if asked, and describe the result."""
        obj = read_dicom(data)
        if deidentify:
            data = self._deidentifier(data)
            obj = read_dicom(data)  # UIDs changed: describe what is shared, not what came in
        return data, obj

    # --- log and fan-out ---
    async def _share(self, sender: Sender, kind: str, body: dict, object_id: str, action: str = "share",
                     ref: object = None, ack: str | None = None, **audit: Any) -> dict | None:
        """The one way an item goes on record: audited, then synced to the session log,
        then announced. StorageUnavailable if the disk refuses either; then nobody hears
        of it. None if the room closed meanwhile. Items leave in the order they came:
        the audit trail answers in order and the rest does not wait."""
        began = time.monotonic()
        await self.hub.audit.record(action, sender.actor, self.room.name, object_id, kind=kind, **audit)
        if self.closed:
            return None
        try:
            entry = self._publish(sender, kind, body, ref, ack)
        except StorageUnavailable as exc:
            self.hub.audit.record_soon(f"{action}-failed", sender.actor, self.room.name, object_id,
                                       kind=kind, code=exc.code)
            raise
        if self.hub.on_intake is not None:
            self.hub.on_intake(kind, time.monotonic() - began)
        return entry

    def _append(self, kind: str, sender_id: str, body: dict, durable: bool = True,
                receipt: dict | None = None) -> dict:
        entry = self.log.append(kind, sender_id, body, durable, receipt)
        self.state.apply(entry)
        return entry

    def _append_quietly(self, kind: str, sender_id: str, body: dict, durable: bool = True) -> None:
        """For entries nobody waits on: a refusing disk is logged, not raised."""
        try:
            self._append(kind, sender_id, body, durable)
        except StorageUnavailable as exc:
            log.error("%s not logged in %s: %s", kind, self.room.name, exc.message)

    def _publish(self, sender: Sender, kind: str, body: dict, ref: object = None, ack: str | None = None) -> dict:
        """Logged, then to everyone; ``ref`` goes only into the sender's copy (its receipt).
        The log keeps ``ref`` (and an HL7 ``ack``) for a retry at another node."""
        receipt = None if ref is None else {"ref": ref, **({"ack": ack} if ack is not None else {})}
        entry = self._append(kind, sender.peer_id, {**body, "sender_name": sender.name}, receipt=receipt)
        for peer in list(self.room.peers.values()):
            peer.send_data(self._notice(entry, peer.identity, ref if peer.id == sender.peer_id else None))
        self.room.emit({"type": "clinical", "kind": entry["kind"], "seq": entry["seq"], "t": entry["t"],
                        "sender": entry["sender"], "body": entry["body"]})
        return entry

    def _notice(self, entry: dict, identity: str | None, ref: object = None) -> dict:
        """What a peer is told of ``entry``; a DICOM notice carries links signed for
        ``identity`` (None: without links, added when it is sent)."""
        notice = {"type": entry["kind"], "seq": entry["seq"], "t": entry["t"],
                  "sender": entry["sender"], **entry["body"]}
        if entry["kind"] == "dicom" and identity is not None:
            notice.update(self._links(entry["body"]["sha256"], identity))
        if ref is not None:
            notice["ref"] = ref
        return notice

    def _state_for(self, peer: Peer) -> dict:
        state = self.state.snapshot()
        state["dicom"] = [{**d, **self._links(d["sha256"], peer.identity)} for d in state["dicom"]]
        # `pacs`: whether dicom-pull can work here, so that pages offer it only then.
        return {"type": "clinical-state", **state, "pacs": self.hub.pacs is not None}

    def _links(self, sha256: str, identity: str) -> dict[str, str]:
        return self.hub.links.object_links(self.room.name, sha256, identity)

    def _refuse(self, peer_id: str, exc: ClinicalError, ref: object = None, **extra: Any) -> None:
        log.info("refused clinical data from %s: %s", peer_id, exc.code)
        self._reply(peer_id, _error(exc, ref, **extra))

    def _reply(self, peer_id: str, message: dict) -> None:
        peer = self.room.peers.get(peer_id)  # it may have left meanwhile
        if peer is not None:
            peer.send_data(message)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _uploads_of(self, peer: Peer) -> _Uploads:
        uploads = self._uploads.get(peer.id)
        if uploads is None:
            uploads = self._uploads[peer.id] = _Uploads()
        return uploads


def _clinical_message(raw: object) -> dict | None:
    if not isinstance(raw, str) or len(raw) > MAX_MESSAGE:
        return None  # the chat relay refuses it with its own error
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if isinstance(message, dict) and message.get("type") in MESSAGE_TYPES:
        return message
    return None


def _error(exc: ClinicalError, ref: object = None, **extra: Any) -> dict:
    error = {"type": "error", "code": exc.code, "error": exc.message, **extra}
    if ref is not None:
        error["ref"] = ref
    return error


def _ref(message: dict) -> object:
    """What an error or receipt refers to, so the sender can match it to its request."""
    for key in ("ref", "transfer_id", "stream_id"):
        value = message.get(key)
        if (isinstance(value, str) and len(value) <= 64) or type(value) is int:
            return value
    return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _chunk_transfer_id(data: object) -> str | None:
    try:
        return unpack_chunk(data)[0] if isinstance(data, bytes) else None
    except ClinicalError:
        return None


def _frame_stream_id(data: object) -> int | None:
    # Header bytes 4..8, readable even when the rest of the frame is wrong.
    if isinstance(data, bytes) and len(data) >= 8 and data[:2] == b"EC":
        return int.from_bytes(data[4:8], "little")
    return None


def _check_may_report(peer: Peer) -> None:
    # A report is a doctor's signed opinion: a host or a participant, not a viewer or a device.
    if peer.claims.role.value not in ("host", "participant"):
        raise ClinicalError("forbidden", "only a host or a participant may sign a consult report")


def _check_may_share(peer: Peer) -> None:
    # Clinical items go into the session record: that takes the publish grant as well
    # as data. Viewers (trainees) read them and chat, but put nothing on record.
    if not (peer.grants.data and peer.grants.publish):
        raise ClinicalError("forbidden", "your role may not share clinical data")
