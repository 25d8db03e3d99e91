"""What the clinical data of every room on this node shares: the object store, the
audit trail, the link signer and the preview cache; and the live rooms' sessions.

Layout under ``data_dir``::

    objects/<2 hex>/<sha256>             shared objects, content-addressed
    audit.jsonl                          who shared and who opened what, every room (AuditTrail)
    rooms/<room>/<epoch>/session.jsonl   the session log that replay reads
    rooms/<room>/<epoch>/ecg/*.ecg       ECG recordings

``epoch`` is the room's creation time, so a room created again under an old name
starts empty instead of showing the previous consult's images to new people.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clinical.audit_trail import AuditTrail
from clinical.consult_report import ReportSigner
from clinical.jsonl import read_jsonl
from clinical.object_store import ObjectStore
from clinical.pacs import DicomWebSource
from clinical.plaintext_migration import encrypt_plaintext_files
from clinical.report_push import ReportPush
from clinical.session_state import SessionState
from rooms import RoomStore
from vault import EncryptedWriter, KeyRing

from .clinical_session import ClinicalSession
from .dicom_previews import Previews
from .signed_urls import UrlSigner

if TYPE_CHECKING:
    from .live_room import LiveRoom

log = logging.getLogger("telemed.clinical")


class ClinicalHub:
    def __init__(self, data_dir: str, rooms: RoomStore, secret: str | None, audit: AuditTrail,
                 ring: KeyRing, pacs: DicomWebSource | None = None, report_push: ReportPush | None = None) -> None:
        self.root = Path(data_dir)
        self.ring = ring  # everything clinical is encrypted at rest under it
        encrypt_plaintext_files(self.root, ring)
        self.rooms = rooms
        self.pacs = pacs  # where peers may pull studies from; None: pulling is off
        self.links = UrlSigner(secret)
        self.reports = ReportSigner(secret.encode() if secret else secrets.token_bytes(32))
        self.report_push = report_push  # the hospital's FHIR server for signed reports, if any
        self.audit = audit  # the server's, shared with every other audited event
        self.sessions: dict[str, ClinicalSession] = {}  # live rooms by name
        # Told (kind, seconds) for each item put on record: audit, durable log, fan-out.
        self.on_intake: Callable[[str, float], None] | None = None

    # Created on first use, so that a server nobody shares anything on writes no files.
    @cached_property
    def objects(self) -> ObjectStore:
        return ObjectStore(self.root / "objects", self.ring)

    @cached_property
    def previews(self) -> Previews:
        return Previews(self.objects)

    def open_recording(self, path: Path) -> EncryptedWriter:
        """A new encrypted file for a stream recorded as it arrives (ECG)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        return EncryptedWriter(path, *self.ring.new_data_key(), fsync_interval=1.0)

    def room_dir(self, room: str, created_at: float) -> Path:
        return self.root / "rooms" / room / f"{int(created_at * 1000)}"

    def open_session(self, live: LiveRoom, created_at: float,
                     carried: frozenset[str] = frozenset()) -> ClinicalSession | None:
        try:
            session = ClinicalSession(self, live, self.room_dir(live.name, created_at), carried)
        except Exception:
            # A damaged log must not lock people out of the consult: the room runs
            # without clinical data, and the log stays untouched for inspection.
            log.exception("clinical data disabled in room %s", live.name)
            return None
        self.sessions[live.name] = session
        return session

    def session_closed(self, session: ClinicalSession) -> None:
        if self.sessions.get(session.room.name) is session:
            del self.sessions[session.room.name]

    async def requires_deidentification(self, room: str) -> bool:
        record = await self.rooms.get(room)
        # A room deleted mid-transfer gets the stricter treatment.
        return record is None or record.settings.require_deidentification

    async def shared_object(self, room: str, sha256: str) -> dict[str, Any] | None:
        """The session-log body of a DICOM object shared in ``room``, or None."""
        session = self.sessions.get(room)
        if session is not None:
            state = session.state
        else:
            record = await self.rooms.get(room)
            if record is None:
                return None
            state = await asyncio.to_thread(_replay, self.room_dir(room, record.created_at), self.ring)
        return next((d for d in state.snapshot()["dicom"] if d["sha256"] == sha256), None)

    async def log_entries(self, room: str, to_seq: int | None = None) -> list[dict[str, Any]]:
        """The room's session-log entries up to ``to_seq`` (all if None), oldest first:
        what a recording's replay shows, with the state it started from."""
        record = await self.rooms.get(room)
        if record is None:
            return []
        entries = await asyncio.to_thread(_read_entries, self.room_dir(room, record.created_at), self.ring)
        return [e for e in entries if to_seq is None or e["seq"] <= to_seq]

    async def ecg_recording(self, room: str, entry: dict[str, Any]) -> Path | None:
        """The file (a vault stream) an ``ecg-announce`` log entry of ``room`` recorded its frames into."""
        record = await self.rooms.get(room)
        name = entry.get("body", {}).get("recording") if entry.get("kind") == "ecg-announce" else None
        if record is None or not isinstance(name, str):
            return None
        directory = self.room_dir(room, record.created_at).resolve()
        path = (directory / name).resolve()
        return path if path.is_relative_to(directory) and path.is_file() else None

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            session.close()
        if self.pacs is not None:
            await self.pacs.close()


def _replay(directory: Path, ring: KeyRing) -> SessionState:
    """State of a room nobody is in, read without opening its log for writing."""
    return SessionState.replay(_read_entries(directory, ring))


def _read_entries(directory: Path, ring: KeyRing) -> list[dict[str, Any]]:
    """A session log's complete entries, read without opening it for writing (a live
    writer may be appending; its torn tail is skipped)."""
    path = directory / "session.jsonl"
    if not path.exists():
        return []
    return list(read_jsonl(path, ring))  # skips a torn tail

