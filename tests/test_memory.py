"""Trimming the heap keeps a long run's peak memory flat (figures: benchmarks/throughput.py)."""
import subprocess
import sys

import pytest

FRAGMENT = """
import numpy as np
from harness.memory import trim_heap
def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1])
big = np.ones(2 << 20)  # 16 MB, mmapped; freeing it raises glibc's mmap threshold, so 2 MB blocks come from the heap
del big
keep, blocks = [], []
for _ in range(16):  # 2 MB blocks separated by small live ones: freed, they are holes inside the heap
    blocks.append(np.ones(1 << 18))
    keep.append(np.ones(1 << 15))  # 256 KB: too big for a free hole left by start-up, so it follows its block
start = rss()
blocks.clear()
freed = start - rss()
trimmed = trim_heap()
print(freed, start - rss(), trimmed)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; malloc_trim is glibc's")
def test_trim_returns_freed_holes_inside_the_heap():
    out = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True, check=True).stdout.split()
    freed_kb, after_trim_kb, trimmed = int(out[0]), int(out[1]), out[2]
    assert trimmed == "True"
    assert freed_kb < 8_000  # freeing 32 MB of holes left them resident (without trimming, memory only grows)
    assert after_trim_kb > 28_000  # trimmed: the holes' pages went back to the system


def test_the_runner_trims_after_each_batch_and_each_decoded_item(monkeypatch):
    import harness.runner as runner

    calls = []
    monkeypatch.setattr(runner, "trim_heap", lambda: calls.append(1) or True)

    class Task:
        def load(self, s):
            return {"x": s}

    loader = runner._Loader(Task(), ["a", "b"])
    assert loader[0][1] == {"x": "a"} and loader[1][2] is None
    assert len(calls) == 2
