"""This process's share of the machine's CPU since the last reading."""

from __future__ import annotations

import os
import time


class CpuMeter:
    def __init__(self) -> None:
        self._cores = os.cpu_count() or 1
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def read(self) -> float:
        """0.0 (idle) .. 1.0 (every core busy in this process) since the previous read."""
        cpu, wall = time.process_time(), time.monotonic()
        used, elapsed = cpu - self._cpu, wall - self._wall
        self._cpu, self._wall = cpu, wall
        if elapsed <= 0:
            return 0.0
        return min(1.0, max(0.0, used / elapsed / self._cores))
