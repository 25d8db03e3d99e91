"""What a late joiner must receive, rebuilt from session-log entries.

Entry bodies this module understands (other kinds, such as chat, pass through)::

    kind "dicom"         {"sha256": "<hex>", "name": "ct.dcm", "size": 39206,
                          "object": DicomObject.to_dict()}
    kind "lab"           {"results": [LabResult.to_dict(), ...]}
    kind "ecg-announce"  EcgAnnounce.to_message()
    kind "ecg-end"       {"stream_id": 7}

ECG streams are keyed by (sender, stream_id): each device numbers its own streams.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from clinical.errors import ClinicalError

DICOM = "dicom"
LAB = "lab"
ECG_ANNOUNCE = "ecg-announce"
ECG_END = "ecg-end"


class SessionState:
    def __init__(self) -> None:
        self.seq = 0
        self._dicom: dict[str, dict[str, Any]] = {}
        self._labs: dict[tuple[str | None, str], dict[str, Any]] = {}
        self._ecg: dict[tuple[str, int], dict[str, Any]] = {}

    @classmethod
    def replay(cls, entries: Iterable[dict[str, Any]]) -> SessionState:
        state = cls()
        for entry in entries:
            state.apply(entry)
        return state

    def apply(self, entry: dict[str, Any]) -> bool:
        """Fold one log entry in; False if it was already applied or changes nothing."""
        try:
            seq, kind, sender, body = entry["seq"], entry["kind"], entry["sender"], entry["body"]
            if seq <= self.seq:
                return False  # replaying an overlap is harmless
            changed = self._fold(
                kind, sender, body, {"seq": seq, "t": entry["t"], "sender": sender}
            )
        except (KeyError, TypeError) as exc:
            raise ClinicalError(
                "state-entry", f"malformed {entry.get('kind', '?')} entry: {exc!r}"
            ) from None
        self.seq = seq
        return changed

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state, each list in log order; ``seq`` is where live updates resume."""
        return {
            "seq": self.seq,
            "dicom": sorted(self._dicom.values(), key=_by_seq),
            "labs": sorted(self._labs.values(), key=_by_seq),
            "ecg_streams": sorted(self._ecg.values(), key=_by_seq),
        }

    def _fold(self, kind: str, sender: str, body: dict[str, Any], stamp: dict[str, Any]) -> bool:
        if kind == DICOM:
            if body["sha256"] in self._dicom:
                return False  # the same bytes shared again
            self._dicom[body["sha256"]] = {**body, **stamp}
            return True
        if kind == LAB:
            return any([self._lab(result, stamp) for result in body["results"]])
        if kind == ECG_ANNOUNCE:
            self._ecg[(sender, body["stream_id"])] = {**body, **stamp}
            return True
        if kind == ECG_END:
            return self._ecg.pop((sender, body["stream_id"]), None) is not None
        return False

    def _lab(self, result: dict[str, Any], stamp: dict[str, Any]) -> bool:
        # Per patient and LOINC code: one consult may discuss more than one patient.
        key = (result.get("patient"), result["loinc"])
        current = self._labs.get(key)
        if current is not None and not _not_older(
            result.get("effective"), current.get("effective")
        ):
            return False  # a delayed older result must not hide the newer one
        self._labs[key] = {**result, **stamp}
        return True


def _not_older(new: str | None, old: str | None) -> bool:
    """Compare effective times when both are comparable; otherwise arrival order wins."""
    a, b = _instant(new), _instant(old)
    if a is None or b is None or (a.tzinfo is None) != (b.tzinfo is None):
        return True
    return a >= b


def _instant(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None  # partial dates such as "2024-05" have no single instant


def _by_seq(item: dict[str, Any]) -> int:
    return item["seq"]
