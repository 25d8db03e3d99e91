"""Real helper servers for tests (Redis, Orthanc): start, wait until they answer, stop."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def serving(name: str, args: list[str], log: Path, ready: Callable[[], bool],
            timeout: float = 20.0, **popen: object) -> Iterator[subprocess.Popen]:
    """Run `args` until the block ends; fail the test with the log's tail if it never
    becomes `ready()`. The log is a file, never a pipe nobody reads (that would block)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **popen)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                pytest.fail(f"{name} did not start (exit code {proc.poll()}):\n{tail}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
