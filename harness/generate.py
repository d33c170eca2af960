"""`python -m harness generate`: write a generation task's videos into a folder, with a manifest, resumably.

    resolve task and model -> list prompts -> (stratified --limit) -> plan (sample id, prompt, seed) per video
    -> manifest.json (complete: false) -> per batch: the missing videos, generated and put through the writer exactly
    as `run` does (tasks.generation.GenerationTask.generate_clips) -> <id>-<j>[.codes.npz] + <id>-<j>.mp4, each
    written atomically -> manifest.json (complete: true)

An .mp4 that exists is complete (writes are atomic; the codes file is written before its video), so an interrupted
folder resumes where it stopped. A folder made under another task, protocol, model or seed is refused rather than
mixed (--overwrite regenerates it). `--plan-only` writes the manifest without a model: the prompts and seeds an
external generator should use.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.errors import CapabilityError, HarnessError
from harness.generated import MANIFEST, MANIFEST_FORMAT, MANIFEST_VERSION, codes_file_name, read_manifest, \
    stems_to_ids, write_codes
from harness.hashing import derive_seed, sha256_obj, to_jsonable
from harness.io import safe_join, write_bytes, write_json
from harness.results import now_iso


@dataclass
class GenerateSpec:
    task: str
    out: str
    model: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    task_args: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    limit: int | None = None
    seed: int = 0
    batch_size: int | None = None
    device: str = "cpu"
    overwrite: bool = False
    plan_only: bool = False
    progress: bool = True


@dataclass
class GenerateOutcome:
    manifest: Path
    written: int
    skipped: int


def generation_task(name: str, overrides: dict[str, Any] | None = None):
    from harness.runner import build_task
    from tasks.generation import GenerationTask

    task = build_task(name, overrides)
    if not isinstance(task, GenerationTask):
        raise HarnessError(f"task {name} is not a generation task (family {task.family})")
    return task


def select_samples(task, root: Path, limit: int | None, seed: int, log: Callable[[str], None]):
    """The task's prompts, sorted by id, and the --limit subset the runner would take."""
    from harness.subset import stratified_subset

    listing = task.samples(root)
    samples = sorted(listing.samples, key=lambda s: s.id)
    for r in listing.rejected:
        log(f"[harness] data problem (not generated): {r['error']}")
    if limit is not None and limit < len(samples):
        samples = stratified_subset(samples, limit, seed)
    stems_to_ids([s.id for s in samples])  # refuse ids that would share a file name before any work
    return listing, samples


def generate(spec: GenerateSpec, log: Callable[[str], None] | None = None) -> GenerateOutcome:
    from tqdm import tqdm

    from harness.runner import build_model, check_capabilities, model_identity, resolve_data_root
    from harness.registry import MODELS

    log = log or (lambda msg: print(msg, file=sys.stderr))
    task = generation_task(spec.task, spec.task_args)
    task.progress = spec.progress
    root, is_mini = resolve_data_root(task, spec.data_root)
    model = None
    if not spec.plan_only:
        if not spec.model:
            raise HarnessError("generate needs --model (or --plan-only to write the prompts and seeds only)")
        check_capabilities(task, MODELS.get(spec.model))
        model = build_model(spec.model, spec.model_args, spec.device)
        reason = task.check_model(model)
        if reason:
            raise CapabilityError(reason)
    if is_mini:
        log(f"[harness] no --data-root: generating for {task.name} on the {task.dataset} mini split at {root}")
    listing, samples = select_samples(task, root, spec.limit, spec.seed, log)
    plans = {s.id: task.video_plans(s, derive_seed(spec.seed, s.id)) for s in samples}
    out = Path(spec.out)
    header = {
        "format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
        "task": {"name": task.name, "version": task.version, "protocol": task.generation_protocol(),
                 "writer_settings": task.protocol_dict()["writer_settings"]},
        "data": {"dataset": task.dataset, "root": str(root), "mini": is_mini,
                 "manifest_sha": sha256_obj([s.fingerprint() for s in samples]), "n_listed": len(listing.samples)},
        "model": None if model is None else _model_entry(spec.model, model_identity(spec.model, model)),
        "seed": spec.seed, "limit": spec.limit,
    }
    _refuse_other_config(out, header, spec.overwrite)

    def manifest(complete: bool) -> dict[str, Any]:
        videos = []
        for s in samples:
            for plan in plans[s.id]:
                codes = codes_file_name(plan.file)
                videos.append({"sample_id": s.id, "prompt": plan.prompt, "seed_index": plan.seed_index,
                               "seed": plan.seed, "file": plan.file,
                               "codes": codes if (out / codes).exists() else None,
                               **({"record": s.meta["record"]} if s.meta.get("record") else {})})
        return {**header, "complete": complete, "created_at": now_iso(), "videos": videos}

    write_json(out / MANIFEST, manifest(complete=False))
    if model is None:
        log(f"[harness] plan written: {sum(map(len, plans.values()))} videos for {len(samples)} prompts -> "
            f"{out / MANIFEST}")
        return GenerateOutcome(out / MANIFEST, 0, 0)

    todo = [x for s in samples for x in plans[s.id] if spec.overwrite or not (out / x.file).exists()]
    skipped = sum(map(len, plans.values())) - len(todo)
    if skipped:
        log(f"[harness] resuming: {skipped} videos already in {out}")
    per_call = (spec.batch_size or task.default_batch_size) * task.protocol.seeds_per_prompt
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"{task.name} x {spec.model}", unit="video", file=sys.stderr,
               disable=not spec.progress, dynamic_ncols=True)
    import torch

    with torch.inference_mode():
        for start in range(0, len(todo), per_call):
            for clip in task.generate_clips(model, todo[start:start + per_call]):
                target = safe_join(out, clip.plan.file)
                codes_path = safe_join(out, codes_file_name(clip.plan.file))
                if clip.codes is not None:
                    write_codes(codes_path, clip.codes)  # before the video: an existing .mp4 marks a complete pair
                elif codes_path.exists():
                    codes_path.unlink()
                write_bytes(target, clip.data)
            bar.update(min(per_call, len(todo) - start))
    bar.close()
    path = out / MANIFEST
    write_json(path, manifest(complete=True))
    log(f"[harness] generated {len(todo)} videos ({skipped} already there) in {time.perf_counter() - t0:.1f} s "
        f"-> {path}")
    return GenerateOutcome(path, len(todo), skipped)


def _model_entry(name: str, ident: dict[str, Any]) -> dict[str, Any]:
    """The model as result.json names it: id, adapter, args, weights (sha256), generation (sampling settings)."""
    return {"id": name, "adapter": ident["adapter"], "args": ident["config"], "weights": ident["weights"],
            "generation": ident.get("generation", {})}


def _identity(manifest: dict[str, Any]) -> dict[str, Any]:
    data = manifest.get("data") or {}
    return to_jsonable({"task": manifest.get("task"), "model": manifest.get("model"), "seed": manifest.get("seed"),
                        "limit": manifest.get("limit"), "data": data.get("manifest_sha")})


def _refuse_other_config(out: Path, header: dict[str, Any], overwrite: bool) -> None:
    """A folder holds the videos of one configuration: refuse to add to a folder made under another one."""
    old = read_manifest(out) if out.exists() else None
    if old is None or overwrite:
        return
    mine_all, theirs_all = _identity(header), _identity(old)
    for key, mine in mine_all.items():
        theirs = theirs_all[key]
        if key == "model" and (mine is None or theirs is None):
            continue  # a plan (no model) may be filled in later by a model, and a model's folder re-planned
        if mine != theirs:
            raise HarnessError(f"{out / MANIFEST} was written for another {key} ({theirs!r} vs {mine!r}); use "
                               "another --out, or --overwrite to generate every video again")
