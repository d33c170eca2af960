"""Throughput of one run, measured on the same clips: decode-only, model-only and end-to-end `harness run`.

The target: end-to-end throughput >= 90% of the slower of decode-only and model-only, i.e. decoding, the model and
the metrics overlap instead of adding up. A run also has a fixed start-up (imports, building the model, the
environment record) that a run over tens of thousands of clips amortizes; so end to end is reported both as measured
and in steady state, from two runs of N and 2N clips: (2N - N) / (t_2N - t_N) clips/s, the start-up cancelling out.
Also prints the CPU time per clip of decoding, the model and the metrics, whose sum bounds the rate on this
machine's cores whatever the overlap (on a small machine a near-free model is bound by decoding plus metrics), and
checks that peak memory stays flat when the number of clips grows x10.

    python benchmarks/throughput.py [--model downsample] [--clips 32] [--workers 2] [--batch-size 4]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_copy(mini: Path, out: Path, n: int) -> Path:
    """A UCF-101-layout folder whose testlist01 lists `n` clips (links to the mini split's test videos)."""
    test = (mini / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    (out / "ucfTrainTestlist").mkdir(parents=True)
    (out / "ucfTrainTestlist" / "classInd.txt").write_bytes((mini / "ucfTrainTestlist" / "classInd.txt").read_bytes())
    rows = []
    for i in range(n):
        rel = test[i % len(test)]
        cls, name = rel.split("/")
        new = f"{cls}/{name[:-4]}_copy{i:04d}.avi"
        (out / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
        os.symlink(mini / "UCF-101" / rel, out / "UCF-101" / new)
        rows.append(new)
    (out / "ucfTrainTestlist" / "testlist01.txt").write_bytes("".join(f"{r}\r\n" for r in rows).encode())
    return out


def decode_only(task, samples, workers: int, batch_size: int) -> float:
    import torch

    from harness.runner import _Loader, _as_batch

    loader = torch.utils.data.DataLoader(_Loader(task, samples), batch_size=batch_size, num_workers=workers,
                                         collate_fn=_as_batch, prefetch_factor=4 if workers else None,
                                         persistent_workers=workers > 0)
    sum(len(b) for b in loader)  # the first pass starts the workers (a run's start-up): not a decoding rate
    t = time.perf_counter()
    n = sum(len(b) for b in loader)
    return n / (time.perf_counter() - t)


def model_only(task, model, samples, batch_size: int) -> tuple[float, dict[str, float]]:
    """Model-only clips/s (decoded clips in memory), and the CPU seconds per clip of each stage of a run, measured
    one after the other in this process: decoding (one clip at a time), the model (task.predict) and the metrics
    (task.score). Their sum bounds what any overlap can reach on this machine's cores."""
    import torch

    from harness.hashing import derive_seed

    c = time.process_time()
    items = [(s, task.load(s)) for s in samples]
    cpu = {"decode": time.process_time() - c}
    predictions = []
    t, c = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            batch = items[i:i + batch_size]
            predictions.append((batch, task.predict(model, batch, [derive_seed(0, s.id) for s, _ in batch])))
    rate = len(items) / (time.perf_counter() - t)
    cpu["model"] = time.process_time() - c
    with torch.inference_mode():
        task.score(*predictions[0])  # first call: imports (scipy.ndimage ~0.3 s), not per-clip work
    c = time.process_time()
    with torch.inference_mode():
        for batch, prediction in predictions:
            task.score(batch, prediction)
    cpu["metrics"] = time.process_time() - c
    return rate, {k: v / len(items) for k, v in cpu.items()}


def end_to_end(root: Path, model: str, workers: int, batch_size: int, results: Path, cache: Path) -> dict:
    """A real `harness run` in a child process; returns its samples/s and the child's peak RSS."""
    code = ("import json, resource, sys, time; from harness.runner import RunSpec, run; t=time.perf_counter(); "
            f"o=run(RunSpec('ucf101-recon', {model!r}, data_root={str(root)!r}, workers={workers}, "
            f"batch_size={batch_size}, results_root={str(results)!r}, cache_root={str(cache)!r}, progress=False), "
            "log=lambda m: None); dt=time.perf_counter()-t; "
            "print(json.dumps({'n': o.result['task']['data']['n_evaluated'], 'seconds': dt, "
            "'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    stats["samples_per_s"] = stats["n"] / stats["seconds"]
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="downsample")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--skip-memory", action="store_true", help="skip the x10 memory check")
    a = ap.parse_args()

    from harness.dataset import ensure_mini
    from harness.runner import build_model, build_task

    mini = ensure_mini("ucf101")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = make_copy(mini, tmp / "data", a.clips)
        task = build_task("ucf101-recon")
        samples = sorted(task.samples(root).samples, key=lambda s: s.id)
        model = build_model(a.model)
        dec = decode_only(task, samples, a.workers, a.batch_size)
        mod, cpu = model_only(task, model, samples, a.batch_size)
        e2e = end_to_end(root, a.model, a.workers, a.batch_size, tmp / "r", tmp / "c")
        double = make_copy(mini, tmp / "data2", a.clips * 2)
        e2e2 = end_to_end(double, a.model, a.workers, a.batch_size, tmp / "r2", tmp / "c2")
        steady = (e2e2["n"] - e2e["n"]) / max(e2e2["seconds"] - e2e["seconds"], 1e-9)
        startup = max(e2e["seconds"] - e2e["n"] / steady, 0.0)
        floor = min(dec, mod)
        print(f"clips {a.clips}, model {a.model}, workers {a.workers}, batch {a.batch_size}, "
              f"torch threads {__import__('torch').get_num_threads()}")
        print(f"  decode-only   {dec:8.2f} clips/s")
        print(f"  model-only    {mod:8.2f} clips/s")
        print(f"  end-to-end    {e2e['samples_per_s']:8.2f} clips/s  ({e2e['samples_per_s'] / floor:.0%} of the slower "
              f"of the two; target >= 90%)  peak RSS {e2e['peak_rss_mb']:.0f} MB")
        print(f"  steady state  {steady:8.2f} clips/s  ({steady / floor:.0%} of the slower of the two; from runs of "
              f"{e2e['n']} and {e2e2['n']} clips: {e2e['seconds']:.1f} s and {e2e2['seconds']:.1f} s; start-up "
              f"~{startup:.1f} s)")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ceiling = cores / sum(cpu.values())
        print(f"  CPU per clip  decode {cpu['decode'] * 1e3:.0f} ms, model {cpu['model'] * 1e3:.0f} ms, metrics "
              f"{cpu['metrics'] * 1e3:.0f} ms: at most {ceiling:.2f} clips/s on {cores} cores, whatever the overlap; "
              f"steady state is {steady / ceiling:.0%} of that")
        if not a.skip_memory:
            big = make_copy(mini, tmp / "data10", a.clips * 10)
            e2e10 = end_to_end(big, a.model, a.workers, a.batch_size, tmp / "r10", tmp / "c10")
            print(f"  x10 clips     {e2e10['samples_per_s']:8.2f} clips/s  peak RSS {e2e10['peak_rss_mb']:.0f} MB "
                  f"({e2e10['peak_rss_mb'] / e2e['peak_rss_mb']:.2f}x the peak at {a.clips} clips)")


if __name__ == "__main__":
    main()
