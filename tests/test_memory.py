"""The malloc setting that keeps a long run's peak memory flat (figures: benchmarks/throughput.py)."""
import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_threshold_is_pinned_unless_the_user_set_one():
    code = "from harness.memory import fix_mmap_threshold as f; print(f(), f(1 << 20))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]
    env = {"MALLOC_MMAP_THRESHOLD_": "131072", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["False", "False"]  # the user's choice wins


@pytest.mark.parametrize("pinned", [False, True])
def test_freed_large_blocks_go_back_to_the_system_only_when_pinned(pinned):
    """glibc's dynamic threshold keeps a freed 16 MB block in the heap (resident); pinned, it is unmapped."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc, glibc only")
    code = f"""
import numpy as np
from harness.memory import fix_mmap_threshold
def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])
if {pinned}:
    assert fix_mmap_threshold()
start = rss()
for _ in range(3):
    a = np.ones(2 << 20)
    del a
print(rss() - start)
"""
    kept = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert (kept < 2_000) if pinned else (kept > 12_000)  # kB
