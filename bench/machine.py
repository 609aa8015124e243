"""What the machine was and how busy it was while a benchmark measured (results carry both).

Other processes (other test runs, editors) share the cores with a benchmark; the CPU each of our
processes used in a window, next to the whole machine's, shows how much of the box was ours.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


def describe() -> dict[str, Any]:
    """Platform, processor, core count and the load average right now."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle since boot (all cores)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / _TICKS


@dataclass
class CpuWindow:
    """CPU used by some processes and by the whole machine between `start()` and `stop()`."""

    pids: dict[str, int]

    def start(self) -> None:
        """Take the first reading."""
        self._wall = time.monotonic()
        self._machine = machine_busy_seconds()
        self._procs = {name: process_cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, Any]:
        """Seconds of CPU each process and the machine used, as cores busy on average."""
        wall = time.monotonic() - self._wall
        used = {
            name: process_cpu_seconds(pid) - self._procs[name] for name, pid in self.pids.items()
        }
        machine = machine_busy_seconds() - self._machine
        return {
            "wall_seconds": round(wall, 2),
            "cores_busy_machine": round(machine / wall, 2),
            "cores_busy_by_process": {name: round(sec / wall, 2) for name, sec in used.items()},
            "cpu_seconds_by_process": {name: round(sec, 3) for name, sec in used.items()},
            # PostgreSQL, Temporal and whatever else ran on the machine meanwhile.
            "cores_busy_others": round(max(machine - sum(used.values()), 0.0) / wall, 2),
            "load_average_1m_after": round(os.getloadavg()[0], 2),
        }
