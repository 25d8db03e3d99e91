"""The one exception type of the clinical package.

Every validation failure is a ``ClinicalError`` carrying a short machine code
(``"dicom-truncated"``) and a human message, so the transport layer can turn it
into a data-channel or HTTP error without knowing which check failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class ClinicalError(ValueError):
    """A clinical message was refused. ``code`` is stable; ``message`` is for people."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.message = message or code
        super().__init__(f"{code}: {self.message}")

    def to_dict(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


@contextmanager
def library_errors(code: str, what: str) -> Iterator[None]:
    """Turn any exception from a third-party parser into a ``ClinicalError``.

    pydicom, numpy, pydantic and the image decoders share no exception base class,
    and bad input must never surface as a traceback.
    """
    try:
        yield
    except ClinicalError:
        raise
    except Exception as exc:
        raise ClinicalError(code, f"{what}: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    """One short line about ``exc``: library messages can span pages."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
