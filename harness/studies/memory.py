"""Peak memory of one measured step, without psutil: RSS on CPU, the CUDA allocator's peak on GPU.

On Linux, writing "5" to /proc/self/clear_refs resets the process's peak RSS (VmHWM) to its current RSS, so each
step gets its own peak. Where that is not allowed, the process-lifetime peak (getrusage ru_maxrss) is used and the
method says so (it can only grow, so later steps then report at least the earlier peaks).
"""
from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path

import torch


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_bytes() -> int | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (what can be allocated without swapping), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class PeakMeter:
    """`start()` before a step, `peak()` after: bytes and the method that measured them."""

    device: torch.device
    method: str = ""
    baseline: int | None = None

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            self.method = "torch.cuda.max_memory_allocated"
            return
        self.baseline = current_rss_bytes()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.method = "peak RSS (VmHWM, reset per step)"
        except OSError:
            self.method = "peak RSS of the process (ru_maxrss, not resettable here)"

    def peak(self) -> int | None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.method.startswith("peak RSS (VmHWM"):
            kib = _status_kib("VmHWM")
            if kib is not None:
                return kib * 1024
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(maxrss if sys.platform == "darwin" else maxrss * 1024)
