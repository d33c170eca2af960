"""The runner: one (task, model, configuration) cell from the data root to a result folder.

    resolve task and model -> refuse a capability mismatch -> list samples -> (stratified --limit) -> shard
    -> per sample: cache hit, or load (DataLoader workers) -> batch -> task.evaluate -> cache write
    -> task.aggregate -> result.json + samples.jsonl (atomic)

A model the task cannot evaluate (a capability it lacks, or `task.check_model` refusing it, e.g. a text-only protocol
for a model without language) gets a result with status "not_applicable" and the reason, never a score of zero.
A bad item (undecodable video, model output with NaN) is recorded as a failure with its path and the run goes on;
`strict` turns the first failure into an error. Interrupting a run loses nothing: every finished sample is already in
the cache, and the next run with the same configuration picks up from there.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from harness import distributed
from harness.cache import SampleCache, default_cache_root, run_key
from harness.dataset import ensure_mini
from harness.errors import CapabilityError, DataError, HarnessError
from harness.hashing import derive_seed, sha256_obj
from harness.io import read_json
from harness.memory import trim_heap
from harness.registry import MODELS, TASKS
from harness.results import SCHEMA_VERSION, environment, git_state, now_iso, result_dir, write_result
from harness.subset import stratified_subset
from harness.task import Record, Sample, Task
from models.base import ModelAdapter


@dataclass
class RunSpec:
    task: str
    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    task_args: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    limit: int | None = None
    seed: int = 0
    batch_size: int | None = None
    workers: int = 0
    device: str = "cpu"
    results_root: str = "results"
    cache_root: str | None = None
    strict: bool = False
    overwrite: bool = False
    progress: bool = True


@dataclass
class RunOutcome:
    path: Path
    result: dict[str, Any]
    skipped: bool = False


class StrictModeError(HarnessError):
    """--strict: the first bad item stops the run."""


def build_task(name: str, overrides: dict[str, Any] | None = None) -> Task:
    return TASKS.get(name)(**(overrides or {}))


def build_model(name: str, args: dict[str, Any] | None = None, device: str = "cpu") -> ModelAdapter:
    factory = MODELS.get(name)
    return factory(device=device, **(args or {}))


def model_identity(name: str, model: ModelAdapter) -> dict[str, Any]:
    ident = {"adapter": MODELS.entry(name), "config": model.config(), "weights": model.weight_hashes()}
    settings = model.generation_settings()
    if settings:  # only generative adapters report any, so other models keep their identity
        ident["generation"] = settings
    return ident


def check_capabilities(task: Task, model_cls: Any) -> None:
    missing = task.requires - frozenset(getattr(model_cls, "capabilities", frozenset()))
    if missing:
        raise CapabilityError(f"task {task.name} needs {', '.join(sorted(missing))}; model "
                              f"{getattr(model_cls, '__name__', model_cls)} offers only "
                              f"{', '.join(sorted(getattr(model_cls, 'capabilities', []))) or 'nothing'}")


def resolve_data_root(task: Task, data_root: str | None) -> tuple[Path, bool]:
    """(root, is_mini): the user's copy, or the mini split generated once into $PYRATOK_BENCH_CACHE/mini."""
    if data_root:
        return Path(data_root).expanduser().resolve(), False
    return ensure_mini(task.dataset, seed=0), True


def run(spec: RunSpec, log: Callable[[str], None] | None = None) -> RunOutcome:
    ctx = distributed.setup(spec.device)
    try:
        return _run(spec, ctx, log or _stderr_log(ctx))
    finally:
        ctx.close()


def _stderr_log(ctx: distributed.DistContext) -> Callable[[str], None]:
    def log(msg: str) -> None:
        if ctx.is_main or "failed" in msg:
            print(msg if ctx.world_size == 1 else f"[rank {ctx.rank}] {msg}", file=sys.stderr)
    return log


def _run(spec: RunSpec, ctx: distributed.DistContext, log: Callable[[str], None]) -> RunOutcome:
    task = build_task(spec.task, spec.task_args)
    try:
        check_capabilities(task, MODELS.get(spec.model))
    except CapabilityError as exc:  # e.g. a text-only protocol and a model without language: not a failure
        model = build_model(spec.model, spec.model_args, distributed.rank_device(spec.device, ctx))
        return _not_applicable(spec, task, model, str(exc), ctx, log)
    root, is_mini = resolve_data_root(task, spec.data_root)
    if is_mini:
        log(f"[harness] no --data-root: evaluating {task.name} on the {task.dataset} mini split at {root}")

    listing = task.samples(root)
    samples = sorted(listing.samples, key=lambda s: s.id)
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise HarnessError(f"task {task.name} listed duplicate sample ids")
    n_total = len(samples)
    if spec.limit is not None and spec.limit < n_total:
        samples = stratified_subset(samples, spec.limit, spec.seed)
        log(f"[harness] --limit {spec.limit}: a stratified subset of {len(samples)}/{n_total} samples "
            "(for testing only; limited results never enter the leaderboard)")
    for r in listing.rejected:
        log(f"[harness] data problem (not evaluated): {r['error']}")

    model = build_model(spec.model, spec.model_args, distributed.rank_device(spec.device, ctx))
    reason = task.check_model(model)
    if reason:
        return _not_applicable(spec, task, model, reason, ctx, log)
    m_id = model_identity(spec.model, model)
    t_id = {"name": task.name, "version": task.version, "protocol": task.protocol_dict(), "seed": spec.seed}
    manifest_sha = sha256_obj([s.fingerprint() for s in samples])
    task_hash = sha256_obj({**t_id, "manifest": manifest_sha})
    config_hash = sha256_obj({"model": m_id, "task": task_hash, "limit": spec.limit})[:12]
    folder = result_dir(spec.results_root, spec.model, task.name, task.version, config_hash)

    done = _complete_result(folder / "result.json") if not spec.overwrite else None
    if done is not None:
        log(f"[harness] {folder / 'result.json'} is already complete (use --overwrite to evaluate again)")
        return RunOutcome(folder / "result.json", done, skipped=True)

    cache = SampleCache(spec.cache_root or default_cache_root(), run_key(m_id, t_id))
    t0 = time.perf_counter()
    mine = _evaluate(task, model, samples[ctx.rank::ctx.world_size], cache, spec, log, ctx.is_main)
    parts = ctx.gather(mine)
    if not ctx.is_main:
        ctx.barrier()
        return RunOutcome(folder / "result.json", {}, skipped=False)
    records, failures, reused, eval_s = _merge(parts, samples)
    wall = time.perf_counter() - t0

    metrics = {k: m.to_dict() for k, m in task.aggregate(records).items()} if records else {}
    status = "complete" if not failures else ("failed" if not records else "partial")
    result = {
        "schema_version": SCHEMA_VERSION,
        "created_at": now_iso(),
        "status": status,
        "harness": {"version": _version(), **git_state()},
        "task": {"name": task.name, "version": task.version, "family": task.family, "hash": task_hash,
                 "protocol": task.protocol_dict(), "requires": sorted(task.requires),
                 "headline": list(task.headline),
                 "data": {"dataset": task.dataset, "root": str(root), "mini": is_mini, "manifest_sha": manifest_sha,
                          "n_listed": n_total, "n_selected": len(samples), "n_evaluated": len(records),
                          "limit": spec.limit, "limited": spec.limit is not None and spec.limit < n_total,
                          "rejected": {"n": len(listing.rejected), "items": listing.rejected}}},
        "model": {"id": spec.model, "adapter": m_id["adapter"], "args": m_id["config"], "weights": m_id["weights"],
                  "parameters": model.num_parameters(), "metadata": dataclasses.asdict(model.metadata),
                  **({"generation": m_id["generation"]} if "generation" in m_id else {})},
        "seed": spec.seed,
        "env": {**environment(), "world_size": ctx.world_size},
        "metrics": metrics,
        "timing": {"wall_s": round(wall, 3), "evaluate_s": round(eval_s, 3), "computed": len(records) - reused,
                   "reused": reused, "samples_per_s": round(len(records) / wall, 3) if wall > 0 else None},
        "failures": {"n": len(failures), "items": failures},
        "config_hash": config_hash,
    }
    rows = [{"sample_id": r.sample_id, **r.values} for r in records]
    rows += [{"sample_id": f["sample_id"], "error": f["error"]} for f in failures]
    try:
        path = write_result(folder, result, rows)
    except OSError as exc:
        raise HarnessError(f"cannot write the result to {folder} ({exc}); nothing half-written was left there, and "
                           f"the {len(records)} computed samples are in the cache for the next attempt") from exc
    finally:
        ctx.barrier()
    log(f"[harness] {status}: {len(records)} samples ({reused} reused from the cache), {len(failures)} failures "
        f"-> {path}")
    return RunOutcome(path, result)


def _not_applicable(spec: RunSpec, task: Task, model: ModelAdapter, reason: str, ctx: distributed.DistContext,
                    log: Callable[[str], None]) -> RunOutcome:
    """A result saying the model cannot be evaluated under this protocol (and why), instead of an error or a zero:
    reports show it as "n/a". Nothing is listed or decoded."""
    m_id = model_identity(spec.model, model)
    t_id = {"name": task.name, "version": task.version, "protocol": task.protocol_dict(), "seed": spec.seed}
    task_hash = sha256_obj(t_id)
    config_hash = sha256_obj({"model": m_id, "task": task_hash, "limit": spec.limit})[:12]
    folder = result_dir(spec.results_root, spec.model, task.name, task.version, config_hash)
    if not ctx.is_main:
        ctx.barrier()
        return RunOutcome(folder / "result.json", {}, skipped=False)
    root = str(Path(spec.data_root).expanduser().resolve()) if spec.data_root else None
    result = {
        "schema_version": SCHEMA_VERSION,
        "created_at": now_iso(),
        "status": "not_applicable",
        "reason": reason,
        "harness": {"version": _version(), **git_state()},
        "task": {"name": task.name, "version": task.version, "family": task.family, "hash": task_hash,
                 "protocol": task.protocol_dict(), "requires": sorted(task.requires),
                 "headline": list(task.headline),
                 "data": {"dataset": task.dataset, "root": root, "mini": spec.data_root is None, "n_listed": 0,
                          "n_selected": 0, "n_evaluated": 0, "limit": spec.limit, "limited": False}},
        "model": {"id": spec.model, "adapter": m_id["adapter"], "args": m_id["config"], "weights": m_id["weights"],
                  "parameters": model.num_parameters(), "metadata": dataclasses.asdict(model.metadata)},
        "seed": spec.seed,
        "env": {**environment(), "world_size": ctx.world_size},
        "metrics": {},
        "timing": {"wall_s": 0.0, "evaluate_s": 0.0, "computed": 0, "reused": 0, "samples_per_s": None},
        "failures": {"n": 0, "items": []},
        "config_hash": config_hash,
    }
    try:
        path = write_result(folder, result, [])
    finally:
        ctx.barrier()
    log(f"[harness] not applicable: {reason} -> {path}")
    return RunOutcome(path, result)


def _complete_result(path: Path) -> dict[str, Any] | None:
    try:
        done = read_json(path)
    except (OSError, ValueError):
        return None
    return done if done.get("status") == "complete" else None


def _merge(parts, samples: list[Sample]):
    """Rank 0: records and failures of every rank, deduplicated by sample id, in sample order; the count checked."""
    by_id: dict[str, Record] = {}
    failed: dict[str, dict[str, str]] = {}
    reused, eval_s = 0, 0.0
    for records, failures, n_reused, seconds in parts:
        for r in records:
            by_id.setdefault(r.sample_id, r)
        for f in failures:
            failed.setdefault(f["sample_id"], f)
        reused += n_reused
        eval_s = max(eval_s, seconds)
    expected = {s.id for s in samples}
    answered = set(by_id) | set(failed)
    if answered != expected:
        raise HarnessError(f"gathered {len(answered)} sample answers for {len(expected)} samples "
                           f"(missing: {sorted(expected - answered)[:5]}, unexpected: {sorted(answered - expected)[:5]})")
    records = [by_id[s.id] for s in samples if s.id in by_id]
    failures = [failed[s.id] for s in samples if s.id in failed and s.id not in by_id]
    return records, failures, reused, eval_s


def _version() -> str:
    from harness import __version__

    return __version__


# ---------------------------------------------------------------------------------------------------------------
class _Loader(torch.utils.data.Dataset):
    """Decodes one sample in a DataLoader worker; a bad item becomes an error message, never a crash."""

    def __init__(self, task: Task, samples: list[Sample]):
        self.task, self.samples = task, samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        try:
            return s, self.task.load(s), None
        except DataError as exc:
            return s, None, str(exc)
        except Exception as exc:  # noqa: BLE001 - an unexpected reader error is still one bad item
            return s, None, f"{s.path or s.id}: {type(exc).__name__}: {exc}"
        finally:
            trim_heap()  # the decoder's freed buffers go back to the system (harness/memory.py)


def _as_batch(items):
    return items


def _evaluate(task: Task, model: ModelAdapter, samples: list[Sample], cache: SampleCache, spec: RunSpec, log,
              show_progress: bool = True):
    records: list[Record] = []
    failures: list[dict[str, str]] = []
    todo: list[Sample] = []
    for s in samples:
        hit = cache.get(s)
        if hit is not None:
            records.append(hit)
        else:
            todo.append(s)
    reused = len(records)
    if reused:
        log(f"[harness] resuming: {reused}/{len(samples)} samples found in the cache")
    eval_s = 0.0
    if not todo:
        return records, failures, reused, eval_s

    def fail(sample: Sample, error: str) -> None:
        failures.append({"sample_id": sample.id, "path": sample.path or "", "error": error})
        log(f"[harness] failed: {error}")
        if spec.strict:
            raise StrictModeError(f"--strict: {error}")

    batch_size = spec.batch_size or task.default_batch_size
    loader = torch.utils.data.DataLoader(_Loader(task, todo), batch_size=batch_size, shuffle=False,
                                         num_workers=spec.workers, collate_fn=_as_batch,
                                         prefetch_factor=4 if spec.workers else None,
                                         pin_memory=spec.device.startswith("cuda"))
    bar = tqdm(total=len(todo), desc=f"{task.name} x {spec.model}", unit="sample", file=sys.stderr,
               disable=not (spec.progress and show_progress), dynamic_ncols=True)

    def store(pairs) -> None:
        for sample, record in pairs:
            try:
                cache.put(sample, record)
            except OSError as exc:
                raise HarnessError(f"cannot write to the cache at {cache.dir} ({exc}); the {len(records)} samples "
                                   "finished so far are kept there for the next attempt") from exc
            records.append(record)

    scorer = _Scorer(task, model, spec.seed, fail) if task.pipelined else None
    try:
        with torch.inference_mode():
            for batch in loader:
                ok = []
                for sample, inputs, error in batch:
                    if error is None:
                        ok.append((sample, inputs))
                    else:
                        fail(sample, error)
                t = time.perf_counter()
                if scorer is None:
                    store(_answer(task, model, ok, spec.seed, fail))
                else:
                    store(scorer.submit(ok))
                eval_s += time.perf_counter() - t
                trim_heap()  # flat peak memory however many clips (harness/memory.py)
                bar.update(len(batch))
            if scorer is not None:
                t = time.perf_counter()
                store(scorer.drain())
                eval_s += time.perf_counter() - t
    except BaseException:  # an interrupt or a --strict failure: keep what the helper thread finished
        if scorer is not None:
            try:
                store(scorer.salvage())
            except Exception:
                pass
        raise
    finally:
        if scorer is not None:
            scorer.close()
    bar.close()
    return records, failures, reused, eval_s


SCORE_THREADS = 2  # batches scored at once: one scoring thread bounded downsample at 18.5 clips/s on 2 cores


class _Scorer:
    """Two-stage pipeline of a pipelined task: the model answers a batch on the calling thread, its metrics run on
    `depth` helper threads (scipy's filters and torch release the GIL) while the next batches are decoded and
    answered. Results come back in batch order, on the calling thread (which alone writes the cache); a batch whose
    scoring fails is re-evaluated item by item, as `_answer`. A task's `score` must therefore be thread-safe: it
    computes each batch's records from that batch alone."""

    def __init__(self, task: Task, model: ModelAdapter, seed: int, fail, depth: int = SCORE_THREADS):
        from concurrent.futures import ThreadPoolExecutor

        self.task, self.model, self.seed, self.fail, self.depth = task, model, seed, fail, depth
        self.pool = ThreadPoolExecutor(depth, thread_name_prefix="harness-score")
        self.pending: list[tuple[list, Any]] = []

    def _score(self, items, prediction):
        with torch.inference_mode():  # thread-local: the helper thread enters it too
            return self.task.score(items, prediction)

    def submit(self, items: list[tuple[Sample, Any]]) -> list[tuple[Sample, Record]]:
        """Start `items`; return the finished pairs of batches that are no longer needed in flight."""
        done: list[tuple[Sample, Record]] = []
        if items:
            seeds = [derive_seed(self.seed, s.id) for s, _ in items]
            try:
                prediction = self.task.predict(self.model, items, seeds)
            except ANSWER_ERRORS:
                done += self._finish_pending()  # keep the order of results
                return done + _answer(self.task, self.model, items, self.seed, self.fail)
            self.pending.append((items, self.pool.submit(self._score, items, prediction)))
        while len(self.pending) > self.depth:
            done += self._collect(*self.pending.pop(0))
        return done

    def drain(self) -> list[tuple[Sample, Record]]:
        return self._finish_pending()

    def _finish_pending(self) -> list[tuple[Sample, Record]]:
        done = []
        while self.pending:
            done += self._collect(*self.pending.pop(0))
        return done

    def _collect(self, items, future) -> list[tuple[Sample, Record]]:
        try:
            out = future.result()
            if len(out) != len(items):
                raise HarnessError(f"task returned {len(out)} records for {len(items)} samples")
            return [(s, r) for (s, _), r in zip(items, out)]
        except ANSWER_ERRORS:
            return _answer(self.task, self.model, items, self.seed, self.fail)

    def salvage(self) -> list[tuple[Sample, Record]]:
        """The records of the batches in flight that scored without error (nothing is re-evaluated)."""
        done = []
        for items, future in self.pending:
            try:
                out = future.result()
            except Exception:
                continue
            if len(out) == len(items):
                done += [(s, r) for (s, _), r in zip(items, out)]
        self.pending = []
        return done

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


ANSWER_ERRORS = (HarnessError, ValueError, RuntimeError, FloatingPointError)


def _answer(task: Task, model: ModelAdapter, items: list[tuple[Sample, Any]], seed: int, fail):
    """Evaluate a batch; if it fails, evaluate its items one by one so one bad item does not sink the others."""
    if not items:
        return []
    seeds = [derive_seed(seed, s.id) for s, _ in items]
    try:
        out = task.evaluate(model, items, seeds)
        if len(out) != len(items):
            raise HarnessError(f"task returned {len(out)} records for {len(items)} samples")
        return [(s, r) for (s, _), r in zip(items, out)]
    except ANSWER_ERRORS as exc:
        if len(items) > 1:
            return [pair for item in items for pair in _answer(task, model, [item], seed, fail)]
        sample = items[0][0]
        fail(sample, f"{sample.path or sample.id}: {type(exc).__name__}: {exc}")
        return []
