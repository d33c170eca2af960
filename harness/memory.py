"""Keep the peak memory of long runs flat without slowing them down.

glibc's malloc serves large blocks from its heap once the dynamic mmap threshold has risen (it rises every time a
large mmapped block is freed). Freed heap memory stays resident, and as blocks of many sizes come and go (decoded
clips, model inputs and activations, SSIM planes) the heap fragments: on ucf101-recon with `downsample` the peak RSS
grew 2.2x from 16 to 160 clips. `trim_heap()`, called after every batch in the main process and after every decoded
item in the DataLoader workers, hands the free pages of every arena back to the system (glibc's malloc_trim(0) also
releases whole free pages inside the heap, not only at its top), so the peak stays flat (1.04-1.07x over 10x the
clips) while allocations keep the heap's speed. The former remedy, a fixed 256 KB mmap threshold, kept memory flat
too but made every large block a fresh mmap whose pages fault in on first touch: PyraTok ran ~2x and `downsample`
~2.3x slower inside a run (docs/scale-out.md has the figures; `benchmarks/throughput.py` prints them).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
import threading


@functools.lru_cache(maxsize=None)
def _glibc(name: str, *argtypes):
    """The C library's function `name` (int result), or None where it is absent (not Linux, or a C library other
    than glibc that lacks it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = list(argtypes), ctypes.c_int
    return fn


def trim_heap() -> bool:
    """Return the free heap pages of this process to the system; False where it does not apply (not Linux, not
    glibc). Costs well under a millisecond on a run's heap."""
    fn = _glibc("malloc_trim", ctypes.c_size_t)
    if fn is None:
        return False
    fn(0)
    return True


M_PERTURB = -6  # glibc <malloc.h>
_perturb_lock = threading.Lock()
_perturb_depth = 0


@contextlib.contextmanager
def zeroed_allocations():
    """Inside, every malloc'd block starts zero-filled (glibc M_PERTURB with 0xFF: blocks are filled with its
    complement), as a fresh page would be. Why: the codec libraries read some buffers before writing them, so with
    recycled heap memory libx264's stream depended on what an earlier allocation left there (measured: 20 of 20
    encodes of one clip differed after other work had dirtied the heap; the CRF chosen changed too). Costs a memset
    per allocation of the whole process while held; a no-op where glibc's mallopt is absent."""
    global _perturb_depth
    fn = _glibc("mallopt", ctypes.c_int, ctypes.c_int)
    with _perturb_lock:
        _perturb_depth += 1
        if fn is not None and _perturb_depth == 1:
            fn(M_PERTURB, 0xFF)
    try:
        yield
    finally:
        with _perturb_lock:
            _perturb_depth -= 1
            if fn is not None and _perturb_depth == 0:
                fn(M_PERTURB, 0)
