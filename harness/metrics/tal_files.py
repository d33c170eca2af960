"""Readers of the temporal-localization files in their published formats, shared by `score thumos14/activitynet`.

Rows are plain tuples: ground truth (video, start, end, label), predictions (video, start, end, label, score),
Ambiguous spans (video, start, end). Every malformed line or entry raises `DataError` naming the file and the place.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

from harness.errors import DataError, MissingDataError

# The 20 THUMOS14 detection classes with the UCF101 class ids of `detclasslist.txt` (the kit's text format uses them).
THUMOS14_CLASS_IDS = {
    7: "BaseballPitch", 9: "BasketballDunk", 12: "Billiards", 21: "CleanAndJerk", 22: "CliffDiving",
    23: "CricketBowling", 24: "CricketShot", 26: "Diving", 31: "FrisbeeCatch", 33: "GolfSwing", 36: "HammerThrow",
    40: "HighJump", 45: "JavelinThrow", 51: "LongJump", 68: "PoleVault", 79: "Shotput", 85: "SoccerPenalty",
    92: "TennisSwing", 93: "ThrowDiscus", 97: "VolleyballSpiking",
}
AMBIGUOUS = "Ambiguous"


def _float(value, path, where: str, line: int | None = None) -> float:
    if isinstance(value, bool):
        raise DataError(path, f"{where}: expected a number, got {value!r}", line)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataError(path, f"{where}: expected a number, got {value!r}", line) from None
    if not math.isfinite(x):
        raise DataError(path, f"{where}: {value!r} is not finite", line)
    return x


def thumos14_annotation_files(folder: str | Path, subset: str | None = None) -> tuple[str, dict[str, Path]]:
    """The per-class files `<Class>_<subset>.txt` of an `annotations_test/` (or `annotations_val/`) folder.

    Returns (subset, {class: path}) with Ambiguous included. The subset is inferred when only one is present."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingDataError(f"{folder}: THUMOS14 annotation folder not found (TH14_Temporal_annotations_test.zip "
                               "from the THUMOS14 site, unzipped: annotations_test/<Class>_test.txt)")
    found: dict[str, dict[str, Path]] = {}
    for p in sorted(folder.glob("*_*.txt")):
        cls, _, sub = p.stem.rpartition("_")
        if cls and sub in ("test", "val", "validation"):
            found.setdefault(sub, {})[cls] = p
    if subset is None:
        if len(found) != 1:
            raise DataError(str(folder), f"holds per-class files of subsets {sorted(found) or 'none'}; "
                                         "name one with --subset")
        subset = next(iter(found))
    if subset not in found:
        raise DataError(str(folder), f"holds no <Class>_{subset}.txt files")
    return subset, found[subset]


def parse_thumos14_line(line: str) -> tuple[str, float, float] | None:
    """One line of a per-class file, `<video>␠␠<start> <end>` (split on whitespace; times in seconds): the row, None
    for a blank line; ValueError naming the problem for anything else. The one parser of this format (the data set
    reader tasks/thumos14.py uses it too)."""
    parts = line.split()
    if not parts:
        return None
    if len(parts) != 3:
        raise ValueError(f"expected '<video>  <start> <end>', got {line.rstrip()!r}")
    times = []
    for name, value in (("start", parts[1]), ("end", parts[2])):
        try:
            x = float(value)
        except ValueError:
            raise ValueError(f"{name} {value!r} is not a number") from None
        if not math.isfinite(x):
            raise ValueError(f"{name} {value!r} is not finite")
        times.append(x)
    return parts[0], times[0], times[1]


def thumos14_file_lines(path: str | Path) -> list[tuple[int, str]]:
    """(line number, line) of a per-class file, which must be UTF-8 text."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"is not UTF-8 text ({exc})") from exc
    return list(enumerate(text.splitlines(), start=1))


def read_thumos14_class_file(path: str | Path, label: str) -> list[tuple[str, float, float, str]]:
    """Lines `<video>  <start> <end>` (two spaces, seconds); blank lines are skipped; a bad line is an error."""
    rows = []
    for i, line in thumos14_file_lines(path):
        try:
            row = parse_thumos14_line(line)
        except ValueError as exc:
            raise DataError(str(path), str(exc), i) from None
        if row is not None:
            rows.append((*row, label))
    return rows


def read_thumos14_annotations(folder: str | Path, subset: str | None = None):
    """Ground-truth rows of the 20 classes (file by file, in class-name order) and the Ambiguous spans."""
    _, files = thumos14_annotation_files(folder, subset)
    gt, ambiguous = [], []
    for cls, path in sorted(files.items()):
        rows = read_thumos14_class_file(path, cls)
        if cls == AMBIGUOUS:
            ambiguous.extend((v, s, e) for v, s, e, _ in rows)
        else:
            gt.extend(rows)
    if not gt:
        raise DataError(str(folder), "the per-class annotation files hold no ground-truth segment")
    return gt, ambiguous


def read_activitynet_ground_truth(path: str | Path, subset: str = "validation") -> list[tuple[str, float, float, str]]:
    """Rows of `activity_net.v1-3.min.json` (`database` -> video -> annotations) for one subset, in file order."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path}: ActivityNet ground truth not found (activity_net.v1-3.min.json, from the "
                               "ActivityNet Evaluation/data folder)")
    data = _load_json(path)
    db = data.get("database") if isinstance(data, dict) else None
    if not isinstance(db, dict):
        raise DataError(str(path), "expected an object with a 'database' object (ActivityNet ground-truth format)")
    rows = []
    for video, entry in db.items():
        if not isinstance(entry, dict) or "subset" not in entry:
            raise DataError(str(path), f"database[{video!r}]: expected an object with 'subset' and 'annotations'")
        if entry["subset"] != subset:
            continue
        for j, ann in enumerate(entry.get("annotations", [])):
            rows.append((video, *parse_activitynet_annotation(ann, path, f"database[{video!r}].annotations[{j}]")))
    if not rows:
        raise DataError(str(path), f"no annotated video of subset {subset!r}")
    return rows


def _segment(entry, path, where: str) -> tuple[float, float]:
    if not isinstance(entry, dict):
        raise DataError(str(path), f"{where}: expected an object, got {type(entry).__name__}")
    seg = entry.get("segment")
    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
        raise DataError(str(path), f"{where}: 'segment' must be [start, end], got {seg!r}")
    return _float(seg[0], path, f"{where}.segment[0]"), _float(seg[1], path, f"{where}.segment[1]")


def parse_activitynet_annotation(entry, path, where: str) -> tuple[float, float, str]:
    """(start, end, label) of one `{"segment": [s, e], "label": ...}` of the ground truth; DataError otherwise. The
    one parser of these entries (the data set reader tasks/activitynet.py uses it too)."""
    s, e = _segment(entry, path, where)
    if not isinstance(entry.get("label"), str):
        raise DataError(str(path), f"{where}: 'label' must be a string")
    return s, e, entry["label"]


def _load_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(str(path), f"is not valid JSON ({e.msg})", e.lineno) from None


def read_detections_json(path: str | Path) -> list[tuple[str, float, float, str, float]]:
    """Prediction rows of the ActivityNet results format `{"results": {video: [{label, score, segment}]}}`, in file
    order (which fixes the reference's order of tied scores)."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path}: detection file not found")
    data = _load_json(path)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise DataError(str(path), 'expected {"results": {video: [{"label", "score", "segment"}, ...]}}')
    rows = []
    for video, entries in results.items():
        if not isinstance(entries, list):
            raise DataError(str(path), f"results[{video!r}]: expected a list of detections")
        for j, det in enumerate(entries):
            where = f"results[{video!r}][{j}]"
            s, e = _segment(det, path, where)
            if not isinstance(det.get("label"), str):
                raise DataError(str(path), f"{where}: 'label' must be a string, got {det.get('label')!r}")
            if "score" not in det:
                raise DataError(str(path), f"{where}: 'score' is missing")
            rows.append((video, s, e, det["label"], _float(det["score"], path, f"{where}.score")))
    return rows


def read_detections_kit_text(path: str | Path) -> list[tuple[str, float, float, str, float]]:
    """The THUMOS14 kit's text format, one detection a line: `<video> <t_start> <t_end> <class_id> <confidence>` with
    UCF101 class ids. As the kit does, a `.mpeg` suffix of the name is removed and unknown class ids are skipped with
    a warning."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"{path}: detection file not found")
    rows, skipped = [], 0
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                raise DataError(str(path), f"expected '<video> <t1> <t2> <class_id> <conf>', got {line.rstrip()!r}", i)
            try:
                cid = int(parts[3])
            except ValueError:
                raise DataError(str(path), f"class id {parts[3]!r} is not an integer", i) from None
            if cid not in THUMOS14_CLASS_IDS:
                skipped += 1
                continue
            video = parts[0][:-5] if parts[0].endswith(".mpeg") else parts[0]
            rows.append((video, _float(parts[1], path, "t_start", i), _float(parts[2], path, "t_end", i),
                         THUMOS14_CLASS_IDS[cid], _float(parts[4], path, "confidence", i)))
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} detections whose class id is not a THUMOS14 detection class")
    return rows


def read_detections(path: str | Path):
    """JSON (ActivityNet results format) or the kit's text format, by content."""
    if not Path(path).is_file():
        raise MissingDataError(f"{path}: detection file not found")
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    return read_detections_json(path) if head.startswith(b"{") else read_detections_kit_text(path)
