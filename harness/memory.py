"""Keep the peak memory of long runs flat.

glibc's malloc raises its mmap threshold every time a large block is freed, so afterwards multi-megabyte arrays
(decoded clips, model inputs, SSIM planes) come from the heap, which fragments and grows with the number of clips:
measured on ucf101-recon with 2 decoding workers, the peak RSS grew by ~1 MB per clip (16 clips: 430 MB, 160: 1 GB).
A fixed threshold keeps large blocks in mmap, returned to the system when freed (16 and 320 clips: 361 and 367 MB;
`benchmarks/throughput.py` prints the figures). Set once per process; forked DataLoader workers inherit it.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
DEFAULT_THRESHOLD = 256 * 1024


def fix_mmap_threshold(nbytes: int = DEFAULT_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold (which also stops its dynamic growth); False where it does not apply: not Linux,
    not glibc, or the user chose a value through the MALLOC_MMAP_THRESHOLD_ environment variable."""
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # another C library (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, int(nbytes)) == 1
