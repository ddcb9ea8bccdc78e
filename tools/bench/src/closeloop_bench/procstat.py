"""Per-process CPU time and memory from /proc (Linux), for RSS and items-per-core figures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessSample:
    cpu_seconds: float
    rss_mb: float
    peak_rss_mb: float


def sample(pid: int) -> ProcessSample:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 (utime, stime) counted from after the command name.
    cpu = (int(stat[11]) + int(stat[12])) / _CLOCK_TICKS
    rss = peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return ProcessSample(cpu_seconds=cpu, rss_mb=rss, peak_rss_mb=peak)
