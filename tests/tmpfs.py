"""A small tmpfs the test mounts (we run as root in the test namespace), to fill up or to
make read-only: a real full or read-only file system, not a mocked errno."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True)


def mount_tmpfs(target: Path, size: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(target))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount rights): {done.stderr.strip()}")


def unmount(target: Path) -> None:
    if _run("umount", str(target)).returncode != 0:
        _run("umount", "-l", str(target))  # still busy: detach now, freed when released


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system of its own."""
    target = tmp_path / "disk"
    mount_tmpfs(target, "4m")
    yield target
    unmount(target)


def remount_read_only(target: Path) -> None:
    done = _run("mount", "-o", "remount,ro", str(target))
    if done.returncode != 0:
        pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")


class Filler:
    """Takes all free space on a file system; ``free(n)`` gives back about ``n`` bytes."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "filler"
        with open(self.path, "wb", buffering=0) as f:
            block = b"\0" * 65536
            try:
                while True:
                    f.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        try:  # tmpfs may still fit a smaller write: take that too
            with open(self.path, "ab", buffering=0) as f:
                while True:
                    f.write(b"\0" * 512)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc

    def free(self, nbytes: int) -> None:
        size = self.path.stat().st_size
        os.truncate(self.path, max(0, size - nbytes))

    def remove(self) -> None:
        self.path.unlink()
