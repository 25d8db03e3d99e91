"""How much CPU a server process used, for the benchmarks' per-packet figures.

/proc/PID/stat's utime and stime are sampled at the scheduler tick (250 Hz here): a
server busy 4 % of the time gets about 100 ticks in a 10 s window, so its figure moves
by ±10 % by chance alone, more than the differences being measured. The cgroup v1
cpuacct controller's `cpuacct.usage` instead adds up the scheduler's own runtime, in
nanoseconds, for every thread (exited ones too). So where it is mounted (and we are
root), a measured process gets a cpuacct group of its own; elsewhere the ticks are read,
and the result says which. (The group's `usage_user` and `usage_sys` are in nanoseconds
too, but counted by the same ticks: read alone, as this meter did until 2026-12-01
18:35 UTC, they move in steps of 4 ms. They only split the exact total here.)

Both count the same time: a thread's time in the kernel includes the softirq work that
runs on its way out of a syscall (with veth, the receiving namespace's network stack).
"""

from __future__ import annotations

import os

from .cgroup import Cgroup

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads, from the tick counts."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15.
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process together, from the tick counts."""
    return sum(proc_cpu(pid))


class CpuMeter:
    """The CPU one process (and any it starts) uses from now on."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.group: Cgroup | None = None
        try:
            self.group = Cgroup("cpuacct", pid)
            self.group.add([pid])
        except OSError:  # no cpuacct hierarchy (cgroup v2 only), or not root
            self.close()
        self.kind = "ticks" if self.group is None else "cpuacct"

    def seconds(self) -> tuple[float, float]:
        """(user, system) CPU seconds so far."""
        if self.group is None:
            return proc_cpu(self.pid)
        total = int(self.group.read("cpuacct.usage")) / 1e9
        user, system = int(self.group.read("cpuacct.usage_user")), int(self.group.read("cpuacct.usage_sys"))
        share = user / (user + system) if user + system else 1.0
        return total * share, total * (1 - share)

    def close(self) -> None:
        if self.group is not None:
            self.group.remove()
            self.group = None
