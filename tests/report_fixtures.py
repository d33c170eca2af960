"""Hand-made result folders for the report and sweep tests: small result.json + samples.jsonl written the way the
runner writes them (harness.results.write_result), with per-sample values the tests choose. No model runs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.hashing import sha256_obj
from harness.results import SCHEMA_VERSION, result_dir, write_result

def _standard_ucf_protocol() -> dict[str, Any]:
    """The protocol the registered ucf101-recon records (so these fixtures follow it when it grows)."""
    from harness.runner import build_task

    return build_task("ucf101-recon").protocol_dict()


UCF_PROTOCOL = _standard_ucf_protocol()
DIRECTIONS = {"psnr_frame": True, "ssim": True, "bpp": False}


def fake_result(root: Path, model: str, samples: dict[str, dict[str, float]], *, args: dict[str, Any] | None = None,
                task: str = "ucf101-recon", version: int = 1, family: str = "reconstruction",
                protocol: dict[str, Any] | None = None, status: str = "complete", limit: int | None = None,
                mini: bool = True, seed: int = 0, created_at: str = "2026-01-01T00:00:00+00:00",
                extra_metrics: dict[str, dict[str, Any]] | None = None, headline: list[str] | None = None,
                metadata: dict[str, Any] | None = None, parameters: int | None = None) -> Path:
    """Write one result folder; metrics are the means of the per-sample values (with standard errors)."""
    args = dict(args or {})
    protocol = dict(UCF_PROTOCOL if protocol is None else protocol)
    metrics: dict[str, dict[str, Any]] = {}
    keys = sorted({k for row in samples.values() for k in row})
    for k in keys:
        x = np.array([row[k] for row in samples.values() if k in row], dtype=np.float64)
        metrics[k] = {"value": float(x.mean()), "n": int(x.size), "higher_is_better": DIRECTIONS.get(k, True),
                      "stderr": float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else None}
    metrics.update(extra_metrics or {})
    config_hash = sha256_obj([model, args, task, version, protocol, limit, seed, mini, status, created_at])[:12]
    result = {
        "schema_version": SCHEMA_VERSION, "created_at": created_at, "status": status,
        "harness": {"version": "test", "commit": None, "dirty": None},
        "task": {"name": task, "version": version, "family": family, "hash": "x", "protocol": protocol,
                 "requires": ["reconstruct"], "headline": headline or ["psnr_frame", "ssim", "bpp"],
                 "data": {"dataset": "ucf101", "root": "/nowhere", "mini": mini, "manifest_sha": "x",
                          "n_listed": len(samples), "n_selected": len(samples), "n_evaluated": len(samples),
                          "limit": limit, "limited": limit is not None, "rejected": {"n": 0, "items": []}}},
        "model": {"id": model, "adapter": "tests:Fake", "args": args, "weights": {}, "parameters": parameters,
                  "metadata": dict(metadata or {})},
        "seed": seed, "env": {}, "metrics": metrics, "timing": {}, "failures": {"n": 0, "items": []},
        "config_hash": config_hash,
    }
    rows = [{"sample_id": sid, **vals} for sid, vals in samples.items()]
    folder = result_dir(root, model, task, version, config_hash)
    return write_result(folder, result, rows)


def sample_values(n: int = 8, psnr: float = 30.0, shift: float = 0.0, seed: int = 0) -> dict[str, dict[str, float]]:
    """n samples with PSNR around `psnr` (+ shift), SSIM and bpp; the same ids and base values for the same seed."""
    r = np.random.default_rng(seed)
    base = r.normal(psnr, 2.0, n)
    return {f"Class{i % 4}/v_{i:02d}": {"psnr_frame": float(base[i] + shift), "ssim": float(0.8 + 0.01 * i),
                                        "bpp": 0.1} for i in range(n)}
