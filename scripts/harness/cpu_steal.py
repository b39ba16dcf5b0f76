"""CPU time the hypervisor took from this virtual machine (Linux's `steal` in /proc/stat).

On a shared 2-core VM, other tenants can take a quarter to half of the CPUs for seconds at a
time; a latency measured then is the host's, not ours. The benchmark reads steal around each
timed run and prints it beside the figure, so a reader can tell the two apart.
"""

from __future__ import annotations

from pathlib import Path

PROC_STAT = Path("/proc/stat")


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs so far; (0, 0) where /proc/stat is not Linux's."""
    try:
        fields = PROC_STAT.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0, 0
    if fields[0] != "cpu" or len(fields) < 9:
        return 0, 0
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    values = [int(v) for v in fields[1:9]]
    return values[7], sum(values)


class StealMeter:
    """`percent()`: the share of CPU time stolen since the meter was made."""

    def __init__(self) -> None:
        self._steal, self._total = cpu_times()

    def percent(self) -> float:
        steal, total = cpu_times()
        elapsed = total - self._total
        return round(100.0 * (steal - self._steal) / elapsed, 1) if elapsed > 0 else 0.0
