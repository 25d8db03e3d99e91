"""Per-track recording without transcoding: depacketize, mux (PyAV) into encrypted files
(vault), with a manifest and timeline per recording; export and retention."""

from .errors import ArchiveError, RecordingError
from .recording import Recording
from .recording_manager import RecordingManager

__all__ = ["ArchiveError", "Recording", "RecordingError", "RecordingManager"]
