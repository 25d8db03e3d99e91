"""A cgroup v1 group of the benchmark's own, in one controller's hierarchy: made for
some processes (their threads, and any they start, go with them), and dissolved at
the end, its processes handed back to the root group."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


class Cgroup:
    def __init__(self, controller: str, tag: int) -> None:
        """OSError if the controller is not mounted or we may not write there."""
        self.root = ROOT / controller
        self.path = self.root / f"tmbench-{os.getpid()}-{tag}"
        self.path.mkdir()

    def write(self, name: str, value: str) -> None:
        (self.path / name).write_text(value)

    def read(self, name: str) -> str:
        return (self.path / name).read_text()

    def add(self, pids: list[int]) -> None:
        for pid in pids:
            self.write("cgroup.procs", str(pid))

    def remove(self) -> None:
        try:
            for pid in self.read("cgroup.procs").split():
                (self.root / "cgroup.procs").write_text(pid)
            self.path.rmdir()
        except OSError:  # the processes gone, or the group already
            pass
