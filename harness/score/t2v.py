"""`score t2v`: score a folder of generated videos with a generation task's metrics (any generation task).

The folder is what `generate` writes, or what any other generator writes in the same form: a manifest.json
(docs/generation.md), or just files named `<sample_id>-<seed_index>.mp4` (ids made safe with
harness.results.safe_name) for the task's prompts. Each video is decoded and scored by the same code the in-process
run uses (GenerationTask.score_sample, then aggregate), against the same cached real statistics, so a folder written
by `generate` scores exactly as `run` did. Codebook usage comes from the folder's .codes.npz files, or from
re-encoding the videos with --model when there are none.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.errors import DataError, HarnessError


class T2VScorer:
    help = ("score a folder of generated videos (manifest.json, or <sample_id>-<seed_index>.mp4 names) with a "
            "generation task's metrics: FVD vs its real clips, CLIPSIM, codebook usage")

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--task", required=True, help="a generation task (msrvtt-t2v, anetcap-t2v, ucf101-gen)")
        p.add_argument("--videos", required=True, help="the folder of generated videos")
        p.add_argument("--data-root", help="the data set's folder (default: the mini split)")
        p.add_argument("--task-arg", action="append", default=[], metavar="K=V",
                       help="protocol override (repeatable); the manifest's generation protocol is used otherwise")
        p.add_argument("--model", help="re-encode videos that come without .codes.npz with this adapter, for "
                                       "codebook usage")
        p.add_argument("--model-arg", action="append", default=[], metavar="K=V")
        p.add_argument("--seed", type=int, help="without a manifest: the run seed (default 0) of --limit")
        p.add_argument("--limit", type=int, help="without a manifest: expect only this stratified subset of prompts")
        p.add_argument("--allow-missing", action="store_true",
                       help="score the videos present even if some prompts or seeds have none (reported as missing)")
        p.add_argument("--device", default="cpu")
        p.add_argument("--no-progress", action="store_true")

    def score(self, args: argparse.Namespace) -> dict[str, Any]:
        from models.base import parse_model_args

        return score_folder(args.task, args.videos, data_root=args.data_root,
                            task_args=parse_model_args(args.task_arg), model=args.model,
                            model_args=parse_model_args(args.model_arg), seed=args.seed, limit=args.limit,
                            allow_missing=args.allow_missing, device=args.device, progress=not args.no_progress)

    @staticmethod
    def table(result: dict[str, Any]) -> str:
        from harness.report.leaderboard import arrow, format_value

        lines = [f"{result['task']['name']}@v{result['task']['version']}  x  {result['videos_folder']}  "
                 f"({result['n_videos']} videos, {result['n_prompts']} prompts, status {result['status']})"]
        for name, m in result["metrics"].items():
            lines.append(f"  {name:<40} {format_value(m):>24} {arrow(m)}")
        return "\n".join(lines)


def _task_overrides(task_name: str, manifest: dict[str, Any] | None, user: dict[str, Any]) -> dict[str, Any]:
    """The manifest's generation protocol, plus the user's overrides of scoring fields (a conflicting override of
    a generation field is an error: the videos were made under the manifest's)."""
    from harness.hashing import to_jsonable

    if manifest is None:
        return dict(user)
    task = manifest.get("task") or {}
    if task.get("name", task_name) != task_name:
        raise DataError("manifest.json", f"was written for task {task.get('name')!r}, not {task_name!r}")
    protocol = dict(task.get("protocol") or {})
    for key, value in user.items():
        if key in protocol and to_jsonable(value) != to_jsonable(protocol[key]):
            raise HarnessError(f"--task-arg {key}={value!r} contradicts the manifest, whose videos were generated "
                               f"with {key}={protocol[key]!r}")
    return {**protocol, **user}


def score_folder(task_name: str, videos: str | Path, data_root: str | None = None,
                 task_args: dict[str, Any] | None = None, model: str | None = None,
                 model_args: dict[str, Any] | None = None, seed: int | None = None, limit: int | None = None,
                 allow_missing: bool = False, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    import torch

    from harness.generate import generation_task, select_samples
    from harness.generated import manifest_entries, read_manifest, scan_folder
    from harness.runner import build_model, resolve_data_root
    from models.base import RECONSTRUCT

    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    folder = Path(videos)
    if not folder.is_dir():
        raise DataError(str(folder), "is not a folder of generated videos")
    manifest = read_manifest(folder)
    task = generation_task(task_name, _task_overrides(task_name, manifest, task_args or {}))
    if manifest is not None and int((manifest.get("task") or {}).get("version", task.version)) != task.version:
        raise DataError(str(folder / "manifest.json"), f"was written for {task.name}@v{manifest['task']['version']}; "
                                                       f"this harness has v{task.version}")
    task.progress, task.device = progress, torch.device(device)
    root, is_mini = resolve_data_root(task, data_root)
    run_seed = int(manifest.get("seed") or 0) if manifest is not None else (seed or 0)
    run_limit = manifest.get("limit") if manifest is not None else limit
    listing, expected = select_samples(task, root, run_limit, run_seed, log)
    known = {s.id: s for s in listing.samples}
    if manifest is not None:
        entries = manifest_entries(folder, manifest)
    else:
        entries, unknown = scan_folder(folder, list(known))
        if unknown:
            raise DataError(str(folder), f"holds {len(unknown)} .mp4 files named after no prompt of {task.name} "
                                         f"(e.g. {unknown[:3]}); expected <sample_id>-<seed_index>.mp4")
        if not entries:
            raise DataError(str(folder), f"holds no manifest.json and no <sample_id>-<seed_index>.mp4 file of "
                                         f"{task.name}'s {len(known)} prompts")
    wanted = {s.id for s in expected}
    by_sample: dict[str, list] = {}
    k = task.protocol.seeds_per_prompt
    for e in entries:
        if e.sample_id not in wanted:
            why = "is not a prompt of the task" if e.sample_id not in known else "is outside the expected subset"
            raise DataError(str(folder / e.file), f"sample {e.sample_id!r} {why}")
        if e.seed_index >= k:
            raise DataError(str(folder / e.file), f"has seed index {e.seed_index}; the protocol asks for {k} seeds "
                                                  "per prompt (score with --task-arg seeds_per_prompt=N)")
        prompt = known[e.sample_id].meta["prompt"]
        if e.prompt is not None and e.prompt != prompt:
            raise DataError(str(folder / e.file), f"was generated from {e.prompt!r}, but the task's prompt for "
                                                  f"{e.sample_id} is {prompt!r}")
        by_sample.setdefault(e.sample_id, []).append(e)
    missing = [f"{s.id} seed {j}" for s in expected for j in range(k)
               if not any(e.seed_index == j and (folder / e.file).exists() for e in by_sample.get(s.id, []))]
    if missing and not allow_missing:
        raise DataError(str(folder), f"lacks {len(missing)} of the {len(expected) * k} expected videos (e.g. "
                                     f"{', '.join(missing[:5])}); generate them, or pass --allow-missing")
    encoder = None
    if model:
        encoder = build_model(model, model_args or {}, device)
        if RECONSTRUCT not in encoder.capabilities:
            raise HarnessError(f"--model {model} cannot encode, so it cannot re-encode videos for codebook usage")
    records, failures = [], []
    for sample in expected:
        present = sorted((e for e in by_sample.get(sample.id, []) if (folder / e.file).exists()),
                         key=lambda e: e.seed_index)
        if not present:
            continue
        try:
            clips = [_read_clip(task, folder, sample, e, encoder) for e in present]
            records.append(task.score_sample(sample, clips))
        except (DataError, ValueError, RuntimeError) as exc:
            failures.append({"sample_id": sample.id, "error": str(exc)})
            log(f"[harness] failed: {exc}")
    metrics = {k: m.to_dict() for k, m in task.aggregate(records).items()} if records else {}
    status = "complete" if not (failures or missing) else ("failed" if not records else "partial")
    return {"status": status, "task": {"name": task.name, "version": task.version,
                                       "protocol": task.protocol_dict()},
            "videos_folder": str(folder), "manifest": manifest is not None,
            "model": None if manifest is None else manifest.get("model"),
            "data": {"dataset": task.dataset, "root": str(root), "mini": is_mini},
            "n_prompts": len(records), "n_videos": sum(len(r.values["videos"]) for r in records),
            "missing": missing, "failures": failures, "metrics": metrics,
            "samples": [{"sample_id": r.sample_id, **r.values} for r in records]}


def _read_clip(task, folder: Path, sample, entry, encoder):
    from harness.generated import decode_generated, read_codes
    from harness.io import safe_join
    from tasks.generation import GeneratedClip, VideoPlan

    p = task.protocol
    frames, resized = decode_generated(safe_join(folder, entry.file), p.num_frames, p.height, p.width)
    if entry.codes:
        codes = read_codes(safe_join(folder, entry.codes))
    else:
        codes = task.reencode(encoder, frames)
    plan = VideoPlan(sample.id, sample.meta["prompt"], entry.seed_index, entry.seed, entry.file)
    return GeneratedClip(plan, frames, None, codes, resized)
