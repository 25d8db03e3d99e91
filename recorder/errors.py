"""Refusals the recording API maps onto HTTP errors."""

from __future__ import annotations


class ArchiveError(OSError):
    """The S3 archive could not be reached, refused, or holds something other than was sent."""


class RecordingError(Exception):
    """``status`` is the HTTP status a face should answer with; ``code`` is stable."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
