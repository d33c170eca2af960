"""Speed of the segmentation and localization metrics against their reference implementations, side by side.

    python benchmarks/metrics_speed.py --davis-ref /tmp/davis2017-evaluation --anet-ref /tmp/ActivityNet \
        [--davis-fixture DIR ...] [--extra-path DIR] [--repeat 3]

* J&F: `score davis` vs davis2017-evaluation's `DAVISEvaluation.evaluate` on DAVIS fixtures (folders holding
  `DAVIS/` and `results/`; default: ../shared/golden/davis-* beside the checkout when present, else a synthetic one).
  The reference needs cv2 (opencv-python-headless); `--extra-path` adds a folder to sys.path for it.
* TAL mAP: `LocalizationMAP` (with our JSON readers) vs ActivityNet `Evaluation/eval_detection.py` on a synthetic
  THUMOS14-test-sized problem (212 videos, ~3,400 ground-truth segments, 200 detections per video, tIoU 0.3:0.1:0.7).
  The reference is Python 2 code; it is run through small textual shims written to a temporary folder (print
  statements, iteritems, np.float, urllib2 import) with `check_status=False`, nothing else changed. It is timed as
  shipped (joblib, one process per class) and in one process.

Both sides read the same files and must give the same numbers (printed). Timings are the best of --repeat runs.
Missing references are skipped with a message. This is a report, not a test.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.metrics.localization import THUMOS14_TIOU, LocalizationMAP  # noqa: E402
from harness.metrics.tal_files import read_activitynet_ground_truth, read_detections_json  # noqa: E402


def best_of(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


# ---------------------------------------------------------------------------------------------------------- DAVIS
def synthetic_davis(folder: Path, frames: int = 30, seed: int = 0) -> Path:
    """A DAVIS-layout fixture: two sequences of moving discs (3 and 2 objects) and noisy predictions."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (folder / "DAVIS/ImageSets/2017").mkdir(parents=True)
    (folder / "DAVIS/ImageSets/2017/val.txt").write_text("seqa\nseqb\n")
    yy, xx = np.mgrid[0:480, 0:854]
    for seq, k in (("seqa", 3), ("seqb", 2)):
        for sub in ("DAVIS/Annotations/480p", "DAVIS/JPEGImages/480p", "results"):
            (folder / sub / seq).mkdir(parents=True)
        centres = rng.uniform([100, 100], [380, 750], (k, 2))
        for t in range(frames):
            gt = np.zeros((480, 854), np.uint8)
            pred = np.zeros_like(gt)
            for i in range(k):
                cy, cx = centres[i] + t * np.array([1.5, 3.0]) * (i + 1)
                gt[(yy - cy) ** 2 + (xx - cx) ** 2 < (40 + 10 * i) ** 2] = i + 1
                jy, jx = rng.normal(0, 4, 2)
                pred[(yy - cy - jy) ** 2 + (xx - cx - jx) ** 2 < (38 + 10 * i) ** 2] = i + 1
            Image.fromarray(gt, "L").convert("P").save(folder / f"DAVIS/Annotations/480p/{seq}/{t:05d}.png")
            Image.fromarray(pred, "L").convert("P").save(folder / f"results/{seq}/{t:05d}.png")
            (folder / f"DAVIS/JPEGImages/480p/{seq}/{t:05d}.jpg").write_bytes(b"")
    return folder


def bench_davis(ref: Path | None, fixtures: list[Path], repeat: int) -> list[float]:
    from harness.score.davis import DavisScorer

    if ref is None or not (ref / "davis2017").is_dir():
        print("J&F: skipped: no davis2017-evaluation checkout (pass --davis-ref DIR holding davis2017/)")
        return []
    sys.path.insert(0, str(ref))
    try:
        from davis2017.evaluation import DAVISEvaluation
    except ImportError as e:
        print(f"J&F: skipped: the reference cannot be imported ({e}); it needs cv2 (opencv-python-headless), "
              "which --extra-path can point at")
        return []
    speedups = []
    for fx in fixtures:
        args = argparse.Namespace(davis_root=str(fx / "DAVIS"), results=str(fx / "results"), set="val",
                                  task="semi-supervised", resolution="480p")

        def reference():
            with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
                m = DAVISEvaluation(str(fx / "DAVIS"), "semi-supervised", "val").evaluate(str(fx / "results"))
            return np.mean(m["J"]["M"]), np.mean(m["F"]["M"])

        t_ref, (j_ref, f_ref) = best_of(reference, repeat)
        t_ours, ours = best_of(lambda: DavisScorer().score(args), repeat)
        same = abs(ours["J-Mean"] - j_ref) + abs(ours["F-Mean"] - f_ref)
        speedups.append(t_ref / t_ours)
        print(f"J&F {fx.name}: {ours['objects']} objects; reference {t_ref:.3f} s, ours {t_ours:.3f} s, "
              f"speed-up {t_ref / t_ours:.1f}x; |J-Mean diff| + |F-Mean diff| = {same:.2e}")
    return speedups


# ------------------------------------------------------------------------------------------------------------ TAL
def synthetic_thumos(folder: Path, seed: int = 0, videos: int = 212, classes: int = 20, gt_total: int = 3400,
                     dets_per_video: int = 200) -> tuple[Path, Path]:
    """ActivityNet-format ground truth and detections the size of THUMOS14 test: instances clustered in videos,
    detections = jittered copies of true segments plus background, scores with ties (rounded)."""
    rng = np.random.default_rng(seed)
    labels = [f"Action{c:02d}" for c in range(classes)]
    db, results = {}, {}
    per_video = rng.multinomial(gt_total, np.ones(videos) / videos)
    for v in range(videos):
        name = f"video_test_{v:07d}"
        dur = float(rng.uniform(60, 600))
        vlabels = rng.choice(classes, size=2, replace=False)
        anns = []
        for _ in range(per_video[v]):
            s = float(rng.uniform(0, dur - 10))
            anns.append({"segment": [round(s, 1), round(s + float(rng.uniform(1, 10)), 1)],
                         "label": labels[int(rng.choice(vlabels))]})
        db[name] = {"subset": "test", "duration": dur, "annotations": anns}
        dets = []
        for _ in range(dets_per_video):
            if anns and rng.random() < 0.6:
                a = anns[int(rng.integers(len(anns)))]
                s, e = a["segment"]
                js, je = rng.normal(0, 0.15 * (e - s), 2)
                lab = a["label"] if rng.random() < 0.8 else labels[int(rng.integers(classes))]
                seg = [s + js, max(s + js + 0.1, e + je)]
            else:
                s = float(rng.uniform(0, dur - 5))
                seg, lab = [s, s + float(rng.uniform(0.5, 8))], labels[int(rng.integers(classes))]
            dets.append({"label": lab, "score": round(float(rng.random()), 3), "segment": seg})
        results[name] = dets
    gt_path, det_path = folder / "gt.json", folder / "detections.json"
    gt_path.write_text(json.dumps({"version": "synthetic", "taxonomy": [], "database": db}))
    det_path.write_text(json.dumps({"version": "synthetic", "results": results, "external_data": {}}))
    return gt_path, det_path


def load_anet_reference(ref: Path, workdir: Path, single_process: bool):
    """The reference's eval_detection.py and utils.py with Python 3 shims, as an importable package."""
    pkg = workdir / ("anet_ref_single" if single_process else "anet_ref")
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    for name in ("eval_detection.py", "utils.py"):
        src = (ref / "Evaluation" / name).read_text()
        src = src.replace("import urllib2\n", "").replace(".iteritems()", ".items()").replace("xrange(", "range(")
        src = src.replace("np.float)", "np.float64)").replace("from utils import", "from .utils import")
        src = re.sub(r"^(\s*)print (.+)$", r"\1print(\2)", src, flags=re.M)
        if single_process:
            src = src.replace("Parallel(n_jobs=len(self.activity_index))", "Parallel(n_jobs=1)")
        (pkg / name).write_text(src)
    sys.path.insert(0, str(workdir))
    import importlib

    return importlib.import_module(f"{pkg.name}.eval_detection")


def bench_tal(ref: Path | None, repeat: int) -> list[float]:
    if ref is None or not (ref / "Evaluation" / "eval_detection.py").is_file():
        print("TAL mAP: skipped: no ActivityNet checkout (pass --anet-ref DIR holding Evaluation/eval_detection.py)")
        return []
    speedups = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        gt_path, det_path = synthetic_thumos(tmp)
        thresholds = np.array(THUMOS14_TIOU)

        def ours():
            m = LocalizationMAP(thresholds=THUMOS14_TIOU)
            m.extend(read_activitynet_ground_truth(gt_path, "test"), read_detections_json(det_path))
            return m.compute()

        t_ours, res = best_of(ours, repeat)
        n_gt = sum(len(v["annotations"]) for v in json.loads(gt_path.read_text())["database"].values())
        print(f"TAL mAP: synthetic THUMOS14-test size: {n_gt} true segments, 212 videos, 200 detections per video")
        for single in (False, True):
            mod = load_anet_reference(ref, tmp, single)

            def reference():
                with contextlib.redirect_stdout(io.StringIO()):
                    ev = mod.ANETdetection(str(gt_path), str(det_path), tiou_thresholds=thresholds, subset="test",
                                           check_status=False)
                    ev.evaluate()
                return ev.mAP

            t_ref, ref_map = best_of(reference, 1)  # ~100x slower than ours: one run is enough
            ours_map = np.array([res[f"mAP@{t:.2f}"] for t in THUMOS14_TIOU])
            how = "one process" if single else "as shipped (joblib, one process per class)"
            speedups.append(t_ref / t_ours)
            print(f"  reference {how}: {t_ref:.2f} s; ours {t_ours:.3f} s; speed-up {t_ref / t_ours:.0f}x; "
                  f"max |mAP diff| = {np.abs(ours_map - ref_map).max():.1e} (mAP-avg {res['mAP-avg']:.4f})")
    return speedups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--davis-ref", type=Path, help="checkout of davisvideochallenge/davis2017-evaluation")
    ap.add_argument("--anet-ref", type=Path, help="checkout of activitynet/ActivityNet")
    ap.add_argument("--davis-fixture", type=Path, action="append", default=[],
                    help="folder holding DAVIS/ and results/ (repeatable)")
    ap.add_argument("--extra-path", action="append", default=[], help="folder added to sys.path (e.g. for cv2)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    sys.path[1:1] = a.extra_path
    with tempfile.TemporaryDirectory() as tmp:
        fixtures = a.davis_fixture or sorted(p for p in (REPO.parent / "shared" / "golden").glob("davis-*")
                                             if (p / "results").is_dir())
        if not fixtures:
            fixtures = [synthetic_davis(Path(tmp) / "synthetic")]
        bench_davis(a.davis_ref, fixtures, a.repeat)
        bench_tal(a.anet_ref, a.repeat)


if __name__ == "__main__":
    main()
