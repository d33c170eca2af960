"""Result files: one folder per (model, task, configuration), written atomically, read back by every report.

results/<model>/<task>@v<version>/<config-hash>/
    result.json     schema-versioned: task (name, version, hash, protocol, data), model (id, adapter, args, weight
                    hashes, metadata), environment, seed, metrics with n and uncertainty, timing, failures, status
    samples.jsonl   one line per sample: its id and per-sample values (or its error)
    protocol.yaml   the task protocol, for humans
"""
from __future__ import annotations

import functools
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import yaml

from harness.io import read_json, write_json, write_jsonl, write_text

SCHEMA_VERSION = 1
TRACKED_PACKAGES = ("torch", "numpy", "scipy", "torchmetrics", "av", "decord", "transformers", "diffusers",
                    "pycocotools", "scikit-video", "pyratok-bench")


def safe_name(name: str) -> str:
    """A model or task name as a single, harmless path component."""
    cleaned = re.sub(r"[^A-Za-z0-9._+=-]+", "_", name).strip("._")
    return cleaned or "_"


def result_dir(root: str | Path, model: str, task: str, version: int, config_hash: str) -> Path:
    return Path(root) / safe_name(model) / f"{safe_name(task)}@v{int(version)}" / safe_name(config_hash)


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, Any]:
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        pass
    return {"commit": None, "dirty": None}


def environment() -> dict[str, Any]:
    packages = {}
    for name in TRACKED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    env = {"python": sys.version.split()[0], "platform": platform.platform(), "packages": packages}
    try:
        import torch

        env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        env["threads"] = torch.get_num_threads()
    except Exception:  # pragma: no cover - torch is a hard dependency
        pass
    return env


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def write_result(folder: Path, result: dict[str, Any], sample_rows: list[dict[str, Any]]) -> Path:
    """Write samples first and result.json last: a folder with result.json is complete."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "samples.jsonl", sample_rows)
    write_text(folder / "protocol.yaml", yaml.safe_dump(result["task"]["protocol"], sort_keys=True))
    write_json(folder / "result.json", result)
    return folder / "result.json"


def iter_results(root: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every readable result.json under `root` with a known schema."""
    for path in sorted(Path(root).glob("*/*/*/result.json")):
        try:
            data = read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("schema_version") == SCHEMA_VERSION:
            yield path, data
