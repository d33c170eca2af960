"""ActivityNet 1.3 and ActivityNet Captions: readers for their real files, and one mini split holding both.

Layout:
    <root>/activity_net.v1-3.min.json        {"version", "taxonomy", "database": {<youtube id>: {subset, duration,
                                             resolution, url, annotations: [{segment: [s, e], label}]}}}
                                             keys WITHOUT the v_ prefix; subset training/validation/testing; times are
                                             float seconds; testing videos have "annotations": []
    <root>/captions/{train,val_1,val_2}.json {"v_<id>": {duration, timestamps: [[s, e], ...], sentences: [...]}}
                                             keys WITH v_; sentences after the first mostly start with a space
    <root>/captions/{train,val,test}_ids.json   JSON lists of "v_<id>"     (captions/ may also be the root itself)
    <root>/videos/v_<id>.{mp4,mkv,webm}      flat, as the official crawler writes them (or directly in <root>)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.dataset import Dataset
from harness.errors import DataError, MissingDataError
from harness.metrics.tal_files import parse_activitynet_annotation
from harness.task import Sample, SampleList

ANET_JSON = "activity_net.v1-3.min.json"
SUBSETS = ("training", "validation", "testing")
CAPTION_FILES = {"train": "training", "val_1": "validation", "val_2": "validation"}  # file stem -> ANet subset
CAPTION_ID_FILES = {"train_ids": "training", "val_ids": "validation", "test_ids": "testing"}
CAPTION_DIRS = ("captions", ".")
VIDEO_DIRS = ("videos", ".")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm")


class ActivityNet(Dataset):
    name = "activitynet"
    mini_version = 1
    homepage = ("http://activity-net.org/download.html (activity_net.v1-3.min.json, videos via the official "
                "crawler) and https://cs.stanford.edu/people/ranjaykrishna/densevid/ (captions.zip)")
    layout = f"<root>/{ANET_JSON}, <root>/captions/{{train,val_1,val_2}}.json and <root>/videos/v_<id>.mp4"

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_activitynet_mini(out, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every video of the v1.3 database and of every captions file, once, with each file's malformed entries."""
        root = Path(root)
        anet_path = root / ANET_JSON
        if not anet_path.exists():
            raise MissingDataError(self.missing_message(root, f"the annotation file {anet_path}"))
        db = load_activitynet(anet_path)
        referenced: dict[str, str] = {vid: f"{anet_path}: database[{vid!r}]" for vid in db.videos}
        rejected = list(db.rejected)
        cap_dir = find_captions_dir(root)
        if cap_dir is not None:
            for stem in CAPTION_FILES:
                path = cap_dir / f"{stem}.json"
                if path.exists():
                    caps = load_anet_captions(path)
                    rejected += caps.rejected
                    for key, v in caps.videos.items():
                        referenced.setdefault(v.youtube_id, f"{path}: [{key!r}]")
            for stem in CAPTION_ID_FILES:
                path = cap_dir / f"{stem}.json"
                if path.exists():
                    for key in load_caption_ids(path):
                        referenced.setdefault(strip_prefix(key), f"{path}: {key!r}")
        videos = find_videos(root)
        samples = []
        for vid in sorted(referenced):
            path = videos.get(vid)
            if path is None:
                expected = root / VIDEO_DIRS[0] / f"v_{vid}.mp4"
                rejected.append({"sample_id": vid, "path": str(expected), "error":
                                 f"{expected}: video is missing (.mp4/.mkv/.webm; named at {referenced[vid]})"})
                continue
            entry = db.videos.get(vid)
            samples.append(Sample(vid, str(path), cluster=vid, meta={"subset": entry.subset if entry else None}))
        return SampleList(samples, rejected)


def strip_prefix(key: str) -> str:
    """A Captions key "v_<id>" -> the v1.3 key "<id>" (ids may themselves start with '-' or '_')."""
    return key[2:] if key.startswith("v_") else key


# ---------------------------------------------------------------------------------------------------------------
# ActivityNet 1.3
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ANetSegment:
    t_start: float
    t_end: float
    label: str


@dataclass(frozen=True)
class ANetVideo:
    youtube_id: str  # the database key, without v_
    subset: str
    duration: float
    resolution: str
    url: str
    annotations: tuple[ANetSegment, ...]


@dataclass
class ActivityNetDatabase:
    path: str
    version: str
    taxonomy: list[dict[str, Any]]
    videos: dict[str, ANetVideo]
    rejected: list[dict[str, str]] = field(default_factory=list)

    def labels(self) -> list[str]:
        """The leaf classes of the taxonomy (nodes that are nobody's parent), sorted; 200 in v1.3."""
        parents = {n.get("parentId") for n in self.taxonomy}
        return sorted(str(n["nodeName"]) for n in self.taxonomy if n.get("nodeId") not in parents)

    def ground_truth(self, subset: str = "validation") -> pd.DataFrame:
        """The table ActivityNet's eval_detection.py builds for a subset: video-id, t-start, t-end, label."""
        rows = [(v.youtube_id, s.t_start, s.t_end, s.label) for v in self.videos.values() if v.subset == subset
                for s in v.annotations]
        return pd.DataFrame(rows, columns=["video-id", "t-start", "t-end", "label"])


def load_activitynet(json_path: str | Path, subset: str | None = None) -> ActivityNetDatabase:
    """Parse activity_net.v1-3.min.json (optionally only one subset). The top-level keys version, taxonomy and
    database are required, as the official evaluation requires them; malformed entries are rejected by key."""
    path = Path(json_path)
    if not path.exists():
        raise MissingDataError(ActivityNet().missing_message(path.parent, f"the annotation file {path}"))
    data = _read_json(path)
    missing = [k for k in ("version", "taxonomy", "database") if not isinstance(data, dict) or k not in data]
    if missing:
        raise DataError(str(path), f"lacks the top-level key(s) {missing} of an ActivityNet annotation file")
    if subset is not None and subset not in SUBSETS:
        raise ValueError(f"unknown ActivityNet subset {subset!r} (known: {SUBSETS})")
    videos, rejected = {}, []
    for vid, entry in data["database"].items():
        where = f"database[{vid!r}]"
        try:
            video = _parse_video(vid, entry, path)
        except (KeyError, TypeError, ValueError) as exc:
            rejected.append({"sample_id": vid, "path": f"{path}:{where}", "error": f"{path}: {where}: {exc}"})
            continue
        if subset is None or video.subset == subset:
            videos[vid] = video
    return ActivityNetDatabase(str(path), str(data["version"]), list(data["taxonomy"]), videos, rejected)


def _parse_video(vid: str, entry: dict[str, Any], path: Path) -> ANetVideo:
    """One database entry; annotations are parsed by the scorer's parser (harness.metrics.tal_files), the data set's
    checks (a known subset, forward intervals) are added here. Problems raise ValueError."""
    if entry["subset"] not in SUBSETS:
        raise ValueError(f"subset {entry['subset']!r} is not one of {SUBSETS}")
    duration = float(entry["duration"])
    segments = []
    for i, a in enumerate(entry["annotations"]):
        try:
            s, e, label = parse_activitynet_annotation(a, path, f"annotations[{i}]")
        except DataError as exc:
            raise ValueError(exc.problem) from None
        if s < 0 or e < s:
            raise ValueError(f"annotations[{i}] segment {a['segment']} is not a forward interval")
        segments.append(ANetSegment(s, e, label))
    return ANetVideo(vid, entry["subset"], duration, str(entry.get("resolution", "")), str(entry.get("url", "")),
                     tuple(segments))


# ---------------------------------------------------------------------------------------------------------------
# ActivityNet Captions
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaptionedVideo:
    key: str  # "v_<id>", as in the captions file
    duration: float
    timestamps: tuple[tuple[float, float], ...]
    sentences: tuple[str, ...]  # stripped of the leading/trailing spaces the files carry

    @property
    def youtube_id(self) -> str:
        return strip_prefix(self.key)

    @property
    def paragraph(self) -> str:
        """All sentences joined: the query of paragraph-to-video retrieval."""
        return " ".join(self.sentences)


@dataclass
class CaptionsFile:
    path: str
    videos: dict[str, CaptionedVideo]  # by "v_<id>" key, in file order
    rejected: list[dict[str, str]] = field(default_factory=list)


def load_anet_captions(json_path: str | Path) -> CaptionsFile:
    """Parse train.json / val_1.json / val_2.json. Entries whose timestamps and sentences differ in number, or whose
    timestamps are not forward intervals, are rejected by key."""
    path = Path(json_path)
    if not path.exists():
        raise MissingDataError(ActivityNet().missing_message(path.parent, f"the captions file {path}"))
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataError(str(path), "is not an ActivityNet Captions file (a JSON object keyed by v_<id>)")
    videos, rejected = {}, []
    for key, entry in data.items():
        where = f"[{key!r}]"
        try:
            stamps = tuple((float(a), float(b)) for a, b in entry["timestamps"])
            sentences = tuple(str(s).strip() for s in entry["sentences"])
            if len(stamps) != len(sentences):
                raise ValueError(f"{len(stamps)} timestamps but {len(sentences)} sentences")
            bad = [i for i, (a, b) in enumerate(stamps) if not (np.isfinite(a) and np.isfinite(b)) or a < 0 or b < a]
            if bad:
                raise ValueError(f"timestamps[{bad[0]}] {list(stamps[bad[0]])} is not a forward interval")
            videos[key] = CaptionedVideo(key, float(entry["duration"]), stamps, sentences)
        except (KeyError, TypeError, ValueError) as exc:
            rejected.append({"sample_id": strip_prefix(key), "path": f"{path}:{where}",
                             "error": f"{path}: {where}: {exc}"})
    return CaptionsFile(str(path), videos, rejected)


def load_caption_ids(json_path: str | Path) -> list[str]:
    """A *_ids.json: the list of "v_<id>" keys of a split."""
    data = _read_json(Path(json_path))
    if not isinstance(data, list) or not all(isinstance(k, str) for k in data):
        raise DataError(str(json_path), "is not a JSON list of video ids")
    return data


def find_captions_dir(root: str | Path) -> Path | None:
    for rel in CAPTION_DIRS:
        folder = Path(root) / rel
        if any((folder / f"{stem}.json").exists() for stem in CAPTION_FILES):
            return folder
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(str(path), f"is not valid JSON ({exc})") from exc


# ---------------------------------------------------------------------------------------------------------------
# Videos and samples
# ---------------------------------------------------------------------------------------------------------------
def find_videos(root: str | Path) -> dict[str, Path]:
    """youtube id (no v_) -> video file, from v_<id>.{mp4,mkv,webm} in videos/ or the root (the first found wins)."""
    found: dict[str, Path] = {}
    for rel in VIDEO_DIRS:
        folder = Path(root) / rel
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.suffix in VIDEO_SUFFIXES and p.name.startswith("v_"):
                found.setdefault(p.stem[2:], p)
    return found


def list_activitynet(root: str | Path, subset: str = "validation") -> SampleList:
    """One Sample per video of a v1.3 subset. meta: youtube_id, subset, duration, resolution, segments [[s, e,
    label]] (sorted by start; [] for testing) and labels. Missing videos are rejected (crawled copies miss some)."""
    root = Path(root)
    db = load_activitynet(root / ANET_JSON, subset)
    videos = find_videos(root)
    samples, rejected = [], list(db.rejected)
    for vid in sorted(db.videos):
        v = db.videos[vid]
        path = videos.get(vid)
        if path is None:
            expected = root / VIDEO_DIRS[0] / f"v_{vid}.mp4"
            rejected.append({"sample_id": vid, "path": str(expected),
                             "error": f"{expected}: video is missing (.mp4/.mkv/.webm; {ANET_JSON} {subset})"})
            continue
        segments = sorted([s.t_start, s.t_end, s.label] for s in v.annotations)
        labels = sorted({s[2] for s in segments})
        samples.append(Sample(vid, str(path), stratum=labels[0] if labels else None, cluster=vid, meta={
            "youtube_id": vid, "subset": v.subset, "duration": v.duration, "resolution": v.resolution,
            "segments": segments, "labels": labels}))
    return SampleList(samples, rejected)


def list_anet_captions(root: str | Path, split: str = "val_1") -> SampleList:
    """One Sample per video of a captions file (train, val_1, val_2). meta: key (v_<id>), youtube_id, duration,
    timestamps, sentences (stripped) and paragraph."""
    root = Path(root)
    cap_dir = find_captions_dir(root)
    if cap_dir is None:
        raise MissingDataError(ActivityNet().missing_message(root, "captions/{train,val_1,val_2}.json"))
    caps = load_anet_captions(cap_dir / f"{split}.json")
    videos = find_videos(root)
    samples, rejected = [], list(caps.rejected)
    for key, c in caps.videos.items():
        path = videos.get(c.youtube_id)
        if path is None:
            expected = root / VIDEO_DIRS[0] / f"{key}.mp4"
            rejected.append({"sample_id": c.youtube_id, "path": str(expected),
                             "error": f"{expected}: video is missing (.mp4/.mkv/.webm; {caps.path} [{key!r}])"})
            continue
        samples.append(Sample(c.youtube_id, str(path), cluster=c.youtube_id, meta={
            "key": key, "youtube_id": c.youtube_id, "duration": c.duration,
            "timestamps": [list(t) for t in c.timestamps], "sentences": list(c.sentences), "paragraph": c.paragraph}))
    return SampleList(samples, rejected)


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
MINI_SIZE = (120, 160)  # (height, width)
MINI_FPS = 8  # low, to stay fast: real ActivityNet videos are mostly 25-30 fps
MINI_TICK_FRAMES = 2  # 0.25 s
MINI_SEGMENT_TICKS = (10, 18)  # 2.5-4.5 s
MINI_GAP_TICKS = (3, 8)  # 0.75-2 s of background only
MINI_VIDEOS = {"training": 2, "validation": 1}  # videos per label; testing gets MINI_TESTING unlabelled videos
MINI_TESTING = 2
MINI_X264 = {"crf": 26, "preset": "superfast", "threads": 1}  # one thread: the same bytes on any machine
MINI_VP8 = {"b": "200k", "threads": 1}
MINI_SUFFIXES = {3: ".mkv", 7: ".webm"}  # video number -> container; the others are .mp4
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def write_activitynet_mini(out: Path, seed: int = 0) -> None:
    """14 videos (160x120, 8 fps, 5-17 s): per label 2 training and 1 validation video, each acting its label out
    in 1-3 segments separated by background, plus 2 testing videos with empty annotations. Captions describe each
    segment (train.json: training videos; val_1/val_2: validation videos, val_2 re-annotated with shifted times,
    other wording, and one video fewer). One video is .mkv, one .webm, one id starts with '-'."""
    from harness.video import write_video
    from tasks.mini.scenes import render
    from tasks.mini.timeline import timeline_scene
    from tasks.mini.vocab import ACTIVITYNET_MINI_CLASSES, ACTIVITYNET_MINI_PARENT

    rng = np.random.default_rng(seed)
    plans: list[tuple[str, list]] = []
    for subset, per_label in MINI_VIDEOS.items():
        for name, cls in ACTIVITYNET_MINI_CLASSES.items():
            plans += [(subset, [cls] * int(rng.integers(1, 4))) for _ in range(per_label)]
    labels = list(ACTIVITYNET_MINI_CLASSES.values())
    plans += [("testing", [labels[int(rng.integers(len(labels)))]]) for _ in range(MINI_TESTING)]
    database: dict[str, Any] = {}
    captions: dict[str, dict[str, Any]] = {"train": {}, "val_1": {}, "val_2": {}}
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for k, (subset, plan) in enumerate(plans):
        vid = ("-" if k == 1 else "") + "".join(rng.choice(list(_ID_CHARS), 11 - (k == 1)))
        scene, segments = timeline_scene(rng, plan, MINI_FPS, *MINI_SIZE, frames_per_tick=MINI_TICK_FRAMES,
                                         segment_ticks=MINI_SEGMENT_TICKS, gap_ticks=MINI_GAP_TICKS)
        frames, _ = render(scene)
        suffix = MINI_SUFFIXES.get(k, ".mp4")
        codec = "libvpx" if suffix == ".webm" else "libx264"
        write_video(videos / f"v_{vid}{suffix}", frames, MINI_FPS, codec=codec,
                    options=MINI_X264 if codec == "libx264" else MINI_VP8,
                    container_options={"fflags": "+bitexact"})
        duration = scene.num_frames / MINI_FPS
        # annotators' times: full-precision floats within a third of a frame of the true boundaries
        times = [(max(0.0, (s.start + rng.uniform(-0.3, 0.3)) / MINI_FPS),
                  min(duration, (s.end + rng.uniform(-0.3, 0.3)) / MINI_FPS)) for s in segments]
        database[vid] = {"subset": subset, "duration": round(duration, 2),
                         "resolution": f"{MINI_SIZE[1]}x{MINI_SIZE[0]}",
                         "url": f"https://www.youtube.com/watch?v={vid}",
                         "annotations": [] if subset == "testing" else
                         [{"segment": list(t), "label": s.label} for t, s in zip(times, segments)]}
        if subset == "testing":
            continue
        stems = ["train"] if subset == "training" else ["val_1", "val_2"] if k != len(plans) - MINI_TESTING - 1 \
            else ["val_1"]
        for stem in stems:
            shift = 0.0 if stem != "val_2" else float(rng.uniform(-0.4, 0.4))
            stamps = [[round(max(0.0, a + shift), 2), round(min(duration, b + shift), 2)] for a, b in times]
            sentences = [_caption(scene, s, i, stem == "val_2") for i, s in enumerate(segments)]
            captions[stem][f"v_{vid}"] = {"duration": round(duration, 2), "timestamps": stamps,
                                          "sentences": [(" " if i else "") + t for i, t in enumerate(sentences)]}
    taxonomy = [{"nodeId": 0, "nodeName": "Root", "parentId": None, "parentName": None},
                {"nodeId": 1, "nodeName": ACTIVITYNET_MINI_PARENT, "parentId": 0, "parentName": "Root"}]
    taxonomy += [{"nodeId": i, "nodeName": n, "parentId": 1, "parentName": ACTIVITYNET_MINI_PARENT}
                 for i, n in enumerate(ACTIVITYNET_MINI_CLASSES, start=2)]
    (out / ANET_JSON).write_text(json.dumps({"version": "VERSION 1.3", "taxonomy": taxonomy, "database": database}),
                                 encoding="utf-8")
    cap_dir = out / "captions"
    cap_dir.mkdir(parents=True, exist_ok=True)
    for stem, data in captions.items():
        (cap_dir / f"{stem}.json").write_text(json.dumps(data), encoding="utf-8")
    for stem, subset in CAPTION_ID_FILES.items():
        ids = [f"v_{v}" for v, e in database.items() if e["subset"] == subset]
        (cap_dir / f"{stem}.json").write_text(json.dumps(ids), encoding="utf-8")


def _caption(scene, segment, i: int, rephrase: bool) -> str:
    from tasks.mini.timeline import object_sentence

    o = scene.objects[segment.object_index - 1]
    if not rephrase:
        return object_sentence(scene, segment.object_index, article="a" if i == 0 else "then a")
    return f"The {o.shape}, which is {o.color}, {o.motion}."
