"""THUMOS14 temporal action localization: reader for the official annotation files, and the mini split.

Layout (TH14_Temporal_annotations_{validation,test}.zip and the video zips):
    <root>/annotations_val/<Class>_val.txt, Ambiguous_val.txt        (readme.txt and .xgtf files are ignored)
    <root>/annotations_test/<Class>_test.txt, Ambiguous_test.txt
    <root>/videos/{val,test}/video_{validation,test}_%07d.mp4        (mmaction2), or flat in videos/, or the official
                                                                     zips' validation/ and TH14_test_set_mp4/
A line is `<video>␠␠<start>␠<end>` with times in seconds to one decimal and LF endings; it is parsed with split().
Every CliffDiving line is repeated in Diving (a cliff dive is a dive): both are kept, as in the files. Ambiguous
spans are kept apart (the official kit drops unmatched detections overlapping them; ActionFormer ignores them).
Videos are 30 fps mostly, some 25: convert times with each video's own rate (`video_fps`).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.dataset import Dataset
from harness.errors import DataError, MissingDataError
from harness.metrics.tal_files import parse_thumos14_line, thumos14_annotation_files, thumos14_file_lines
from harness.task import Sample, SampleList

# The 20 classes with their UCF101 ids (detclasslist.txt of the evaluation kit; detection files use these ids).
THUMOS_CLASSES: dict[str, int] = {
    "BaseballPitch": 7, "BasketballDunk": 9, "Billiards": 12, "CleanAndJerk": 21, "CliffDiving": 22,
    "CricketBowling": 23, "CricketShot": 24, "Diving": 26, "FrisbeeCatch": 31, "GolfSwing": 33, "HammerThrow": 36,
    "HighJump": 40, "JavelinThrow": 45, "LongJump": 51, "PoleVault": 68, "Shotput": 79, "SoccerPenalty": 85,
    "TennisSwing": 92, "ThrowDiscus": 93, "VolleyballSpiking": 97,
}
SUBSETS = ("val", "test")
SUBSET_WORD = {"val": "validation", "test": "test"}  # as in the video names
AMBIGUOUS = "Ambiguous"
VIDEO_DIRS = {"val": ("videos/val", "videos", "validation", "val", "."),
              "test": ("videos/test", "videos", "TH14_test_set_mp4", "test", ".")}
VIDEO_NAME = re.compile(r"^video_(validation|test)_\d{7}$")
GT_COLUMNS = ["video", "t_start", "t_end", "label", "class_id", "file", "line"]


class Thumos14(Dataset):
    name = "thumos14"
    mini_version = 1
    homepage = "https://www.crcv.ucf.edu/THUMOS14/download.html (TH14 validation/test videos and temporal annotations)"
    layout = ("<root>/annotations_{val,test}/<Class>_{val,test}.txt (+ Ambiguous_*.txt) and "
              "<root>/videos/{val,test}/video_{validation,test}_%07d.mp4")

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_thumos_mini(out, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every video named by any line of either subset (Ambiguous included), with the malformed lines."""
        samples, rejected = [], []
        for subset in SUBSETS:
            ann_dir = Path(root) / f"annotations_{subset}"
            if not ann_dir.is_dir():
                rejected.append({"sample_id": "", "path": str(ann_dir),
                                 "error": self.missing_message(root, f"the annotation folder {ann_dir}")})
                continue
            listing = list_thumos(root, subset, include_ambiguous_only=True)
            samples += listing.samples
            rejected += listing.rejected
        return SampleList(samples, rejected)


# ---------------------------------------------------------------------------------------------------------------
# Annotations
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class ThumosAnnotations:
    """The ground truth of one subset. `segments` has one row per line of a class file (columns GT_COLUMNS;
    CliffDiving rows appear again under Diving), `ambiguous` the Ambiguous lines (label "Ambiguous", class_id -1)."""

    subset: str
    directory: str
    classes: list[str]  # the classes whose file exists (an empty file still counts), sorted
    segments: pd.DataFrame
    ambiguous: pd.DataFrame
    rejected: list[dict[str, str]] = field(default_factory=list)

    def videos(self, include_ambiguous_only: bool = False) -> list[str]:
        names = set(self.segments["video"])
        if include_ambiguous_only:
            names |= set(self.ambiguous["video"])
        return sorted(names)

    def ground_truth(self) -> pd.DataFrame:
        """The table ActivityNet's eval_detection.py builds: columns video-id, t-start, t-end, label (class name)."""
        gt = self.segments[["video", "t_start", "t_end", "label"]]
        return gt.rename(columns={"video": "video-id", "t_start": "t-start", "t_end": "t-end"}).reset_index(drop=True)

    def for_video(self, video: str) -> tuple[list[list], list[list[float]]]:
        """([[start, end, label], ...] sorted by time, [[start, end], ...] ambiguous spans) of one video."""
        seg = self.segments[self.segments["video"] == video].sort_values(["t_start", "t_end", "label"])
        amb = self.ambiguous[self.ambiguous["video"] == video].sort_values(["t_start", "t_end"])
        return ([[float(a), float(b), str(c)] for a, b, c in zip(seg["t_start"], seg["t_end"], seg["label"])],
                [[float(a), float(b)] for a, b in zip(amb["t_start"], amb["t_end"])])


def class_ids() -> dict[str, int]:
    """Class name -> detection-file id: the 20 official classes, and the mini split's classes."""
    from tasks.mini.vocab import THUMOS_MINI_CLASSES

    return {**THUMOS_CLASSES, **{n: c.class_id for n, c in THUMOS_MINI_CLASSES.items()}}


def read_annotation_file(path: str | Path, subset: str) -> tuple[list[tuple[str, float, float, int]],
                                                                  list[dict[str, str]]]:
    """One class (or Ambiguous) file -> ([(video, start, end, line number)], rejected lines as file:line). Lines are
    parsed by the scorer's parser (harness.metrics.tal_files); this reader adds the data set's checks: a real video
    name of the right subset and a forward interval."""
    path = Path(path)
    rows, rejected = [], []
    word = SUBSET_WORD[subset]
    for lineno, line in thumos14_file_lines(path):
        problem, row = None, None
        try:
            row = parse_thumos14_line(line)
        except ValueError as exc:
            problem = str(exc)
        if row is None and problem is None:
            continue
        if row is not None:
            video, start, end = row
            if not VIDEO_NAME.match(video):
                problem = f"{video!r} is not a THUMOS14 video name (video_{word}_NNNNNNN)"
            elif not video.startswith(f"video_{word}_"):
                problem = f"{video} belongs to another subset than {subset}"
            elif start < 0 or end < start:
                problem = f"segment [{start}, {end}] is not a forward interval"
        if problem:
            parts = line.split()
            rejected.append({"sample_id": parts[0] if parts else "", "path": f"{path}:{lineno}",
                             "error": f"{path}:{lineno}: {problem}"})
            continue
        rows.append((video, start, end, lineno))
    return rows, rejected


def load_thumos_annotations(directory: str | Path, subset: str | None = None) -> ThumosAnnotations:
    """Read every `<Class>_<subset>.txt` and `Ambiguous_<subset>.txt` of an annotation folder, found as the scorer
    finds them (harness.metrics.tal_files.thumos14_annotation_files; the subset is taken from the file names when not
    given). Malformed lines are rejected as file:line; unknown class names likewise."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MissingDataError(Thumos14().missing_message(directory.parent, f"the annotation folder {directory}"))
    if subset is None:
        found = {s for s in SUBSETS if any(directory.glob(f"*_{s}.txt"))}
        if len(found) != 1:
            raise DataError(str(directory), f"cannot tell the subset from the file names (found "
                                            f"{sorted(found) or 'none'} of *_val.txt / *_test.txt); pass subset=")
        subset = found.pop()
    try:
        subset, files = thumos14_annotation_files(directory, subset)
    except DataError:
        raise MissingDataError(Thumos14().missing_message(directory.parent,
                                                          f"*_{subset}.txt files in {directory}")) from None
    ids = class_ids()
    seg_rows, amb_rows, rejected, classes = [], [], [], []
    for label, f in sorted(files.items(), key=lambda kv: kv[1].name):
        if label != AMBIGUOUS and label not in ids:
            rejected.append({"sample_id": "", "path": str(f),
                             "error": f"{f}: {label!r} is not a THUMOS14 class (detclasslist.txt)"})
            continue
        rows, bad = read_annotation_file(f, subset)
        rejected += bad
        if label == AMBIGUOUS:
            amb_rows += [(v, s, e, label, -1, f.name, n) for v, s, e, n in rows]
        else:
            classes.append(label)
            seg_rows += [(v, s, e, label, ids[label], f.name, n) for v, s, e, n in rows]
    return ThumosAnnotations(subset, str(directory), sorted(classes), _table(seg_rows), _table(amb_rows), rejected)


def _table(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=GT_COLUMNS)
    return df.astype({"t_start": float, "t_end": float, "class_id": int, "line": int})


# ---------------------------------------------------------------------------------------------------------------
# Videos and samples
# ---------------------------------------------------------------------------------------------------------------
def find_videos(root: str | Path, subset: str) -> dict[str, Path]:
    """Video name -> file, looking in the folders of VIDEO_DIRS (the first folder holding a name wins)."""
    found: dict[str, Path] = {}
    word = SUBSET_WORD[subset]
    for rel in VIDEO_DIRS[subset]:
        folder = Path(root) / rel
        if folder.is_dir():
            for p in sorted(folder.glob(f"video_{word}_*.mp4")):
                found.setdefault(p.stem, p)
    return found


def video_fps(path: str | Path) -> float:
    """A video's own frame rate (THUMOS14 mixes 30 and 25 fps)."""
    from harness.video import probe

    return probe(path).fps


def list_thumos(root: str | Path, subset: str = "test", include_ambiguous_only: bool = False) -> SampleList:
    """One Sample per video with ground truth in `subset` (videos with only Ambiguous spans, like
    video_test_0001292, only when asked). meta: video, subset, segments [[start, end, label]], ambiguous."""
    root = Path(root)
    ann = load_thumos_annotations(root / f"annotations_{subset}", subset)
    videos = find_videos(root, subset)
    first_line: dict[str, str] = {}
    for df in (ann.segments, ann.ambiguous):
        for v, f, n in zip(df["video"], df["file"], df["line"]):
            first_line.setdefault(v, f"{Path(ann.directory) / f}:{n}")
    samples, rejected = [], list(ann.rejected)
    for name in ann.videos(include_ambiguous_only):
        path = videos.get(name)
        if path is None:
            expected = root / VIDEO_DIRS[subset][0] / f"{name}.mp4"
            rejected.append({"sample_id": name, "path": str(expected),
                             "error": f"{expected}: video is missing (named at {first_line[name]})"})
            continue
        segments, ambiguous = ann.for_video(name)
        labels = sorted({s[2] for s in segments})
        samples.append(Sample(name, str(path), stratum=labels[0] if labels else AMBIGUOUS, cluster=name,
                              meta={"video": name, "subset": subset, "segments": segments, "ambiguous": ambiguous,
                                    "labels": labels}))
    return SampleList(samples, rejected)


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
MINI_SIZE = (120, 160)  # (height, width)
MINI_TICK = 0.2  # seconds; segment and gap lengths are whole ticks, so times are exact at 25 and 30 fps
MINI_SEGMENT_TICKS = (8, 14)  # 1.6-2.8 s
MINI_GAP_TICKS = (4, 7)  # 0.8-1.4 s of background only
MINI_SEGMENTS_PER_VIDEO = (3, 3, 2, 2, 2)  # 5 videos per subset; every class twice per subset
MINI_AMBIGUOUS_IN = (0, 2)  # videos that also hold an Ambiguous span
MINI_X264 = {"crf": 26, "preset": "superfast", "threads": 1}  # one thread: the same bytes on any machine


def write_thumos_mini(out: Path, seed: int = 0) -> None:
    """Per subset 5 videos (160x120, 25 or 30 fps, ~8-14 s) acting out the 6 mini classes twice each, with Ambiguous
    spans, plus a test video holding only an Ambiguous span (like video_test_0001292). SpinsFast lines are repeated
    in Spins_*.txt as CliffDiving lines are in Diving_*.txt. Files: two spaces, %.1f, LF."""
    from harness.video import write_video
    from tasks.mini.scenes import render
    from tasks.mini.timeline import timeline_scene
    from tasks.mini.vocab import THUMOS_MINI_CLASSES, THUMOS_MINI_PARENT

    rng = np.random.default_rng(seed)
    kinds = list(THUMOS_MINI_CLASSES.values())
    for subset in SUBSETS:
        order = [kinds[i] for i in rng.permutation(len(kinds) * 2) % len(kinds)]
        plans = []
        for k, n in enumerate(MINI_SEGMENTS_PER_VIDEO):
            plan = [order.pop() for _ in range(n)]
            if k in MINI_AMBIGUOUS_IN:
                plan.insert(int(rng.integers(0, n + 1)), None)
            plans.append(plan)
        if subset == "test":
            plans.append([None])
        numbers = np.sort(rng.choice(np.arange(1, 1700), len(plans), replace=False))
        lines: dict[str, list[str]] = defaultdict(list)
        for k, (plan, number) in enumerate(zip(plans, numbers)):
            name = f"video_{SUBSET_WORD[subset]}_{number:07d}"
            fps = 25 if k % 3 == 1 else 30
            scene, segments = timeline_scene(rng, plan, fps, *MINI_SIZE, frames_per_tick=round(MINI_TICK * fps),
                                             segment_ticks=MINI_SEGMENT_TICKS, gap_ticks=MINI_GAP_TICKS)
            frames, _ = render(scene)
            path = out / "videos" / subset / f"{name}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, frames, fps, codec="libx264", options=MINI_X264)
            for seg in segments:
                start, end = seg.seconds(fps)
                row = f"{name}  {start:.1f} {end:.1f}\n"
                label = seg.label or AMBIGUOUS
                lines[label].append(row)
                if label in THUMOS_MINI_PARENT:
                    lines[THUMOS_MINI_PARENT[label]].append(row)
        folder = out / f"annotations_{subset}"
        folder.mkdir(parents=True, exist_ok=True)
        for label in [*THUMOS_MINI_CLASSES, AMBIGUOUS]:
            rows = sorted(lines[label], key=lambda r: (r.split()[0], float(r.split()[1])))
            (folder / f"{label}_{subset}.txt").write_bytes("".join(rows).encode("ascii"))
