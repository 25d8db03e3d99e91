"""When the disk refuses: a full, read-only, failing or over-quota file system becomes one
clear error, ``storage-unavailable``, that callers answer with instead of an ack."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clinical.errors import ClinicalError

# What a disk says when it cannot take data. EACCES/EPERM: a data directory the
# service user may not write is the same situation for whoever sent the data.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT, errno.EACCES, errno.EPERM})


class StorageUnavailable(ClinicalError):
    def __init__(self, what: str, exc: OSError, consequence: str = "nothing was recorded") -> None:
        super().__init__("storage-unavailable",
                         f"the server cannot store {what} ({os.strerror(exc.errno or 0)}); {consequence}")
        self.errno = exc.errno


def is_storage_failure(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


@contextmanager
def storing(what: str, consequence: str = "nothing was recorded") -> Iterator[None]:
    """Turn a refusing disk into ``StorageUnavailable``; other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        if is_storage_failure(exc):
            raise StorageUnavailable(what, exc, consequence) from exc
        raise


def check_writable(directory: str | os.PathLike[str]) -> None:
    """Create ``directory`` if needed and prove a file there can be written and synced."""
    root = Path(directory)
    with storing(f"data in {root}", "the data directory must be writable"):
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{secrets.token_hex(4)}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)
