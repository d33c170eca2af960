"""torchrun with 2 CPU processes (gloo) gives exactly the result of 1 process, and resumes across process counts."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _harness(args, nproc: int, env) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                "--master-port", str(_free_port()), "-m", "harness"] if nproc > 1 else [sys.executable, "-m", "harness"]
    return subprocess.run(launcher + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _result(folder: Path):
    path = next(folder.glob("*/*/*/result.json"))
    rows = (path.parent / "samples.jsonl").read_text()
    return json.loads(path.read_text()), rows


def test_two_processes_equal_one_and_resume_across_process_counts(tmp_path, ucf_mini, cache_root):
    # Bitwise equality needs the same floating-point reduction order, hence one thread per process in both runs.
    env = dict(os.environ, OMP_NUM_THREADS="1", PYRATOK_BENCH_CACHE=str(cache_root))
    common = ["run", "--task", "ucf101-recon", "--model", "downsample", "--batch-size", "3", "--no-progress"]
    one = _harness(common + ["--results", str(tmp_path / "r1"), "--cache", str(tmp_path / "c1")], 1, env)
    assert one.returncode == 0, one.stderr
    two = _harness(common + ["--results", str(tmp_path / "r2"), "--cache", str(tmp_path / "c2")], 2, env)
    assert two.returncode == 0, two.stderr[-3000:]
    (r1, rows1), (r2, rows2) = _result(tmp_path / "r1"), _result(tmp_path / "r2")
    assert r2["env"]["world_size"] == 2 and r2["task"]["data"]["n_evaluated"] == 16
    assert r1["metrics"] == r2["metrics"] and rows1 == rows2
    assert r1["config_hash"] == r2["config_hash"]
    # the cache written by 2 processes serves a 1-process run (rank-independent keys)
    again = _harness(common + ["--results", str(tmp_path / "r3"), "--cache", str(tmp_path / "c2")], 1, env)
    assert again.returncode == 0, again.stderr
    r3, rows3 = _result(tmp_path / "r3")
    assert r3["timing"]["reused"] == 16 and r3["metrics"] == r1["metrics"] and rows3 == rows1
