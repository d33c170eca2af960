"""Shared steps of the data set tests: byte comparison of two mini splits, check-data through the CLI, task runs."""
from __future__ import annotations

import json
from pathlib import Path

from harness.cli import main
from harness.metrics.pixel import PSNR_CAP_DB


def same_bytes(a: Path, b: Path) -> int:
    """Assert two folders hold the same files with the same bytes (the cache marker aside); return the file count."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != ".complete")
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != ".complete")
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    return len(files_a)


def check_data(dataset: str, root: Path, out: Path) -> tuple[int, dict]:
    """`check-data --dataset` on `root`: (exit code, JSON report)."""
    code = main(["check-data", "--dataset", dataset, "--data-root", str(root), "--no-progress", "--json", str(out)])
    return code, json.loads(out.read_text())


def truncate(path: Path, fraction: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])


def run_task(task: str, model: str, results: Path, cache: Path, *extra: str) -> dict:
    """`run` a task on its mini split through the CLI and return result.json."""
    code = main(["run", "--task", task, "--model", model, "--results", str(results), "--cache", str(cache),
                 "--no-progress", *extra])
    assert code == 0
    found = sorted(results.glob(f"{model}/{task}@v*/*/result.json"))
    assert len(found) == 1
    return json.loads(found[0].read_text())


def assert_identity_is_perfect(result: dict, n_items: int, frames_per_item: int) -> None:
    m = result["metrics"]
    assert result["status"] == "complete" and result["task"]["data"]["mini"] is True
    assert result["task"]["data"]["n_evaluated"] == n_items
    assert m["ssim"]["value"] == 1.0
    assert m["psnr_frame"]["value"] == PSNR_CAP_DB == m["psnr_video"]["value"]
    assert m["identical_frames"]["value"] == n_items * frames_per_item
    assert m["bpp"]["value"] == 24.0


def assert_downsample_is_lossy(result: dict, n_items: int) -> None:
    m = result["metrics"]
    assert result["status"] == "complete" and result["task"]["data"]["n_evaluated"] == n_items
    assert 12 < m["psnr_frame"]["value"] < 45 and 0.2 < m["ssim"]["value"] < 0.99
    assert m["identical_frames"]["value"] == 0
