"""MSR-VTT: the reader for its real layouts and the mini split (retrieval and captioning tasks build on it).

Annotations, in <root>, <root>/msrvtt_data (CLIP4Clip's msrvtt_data.zip) or <root>/annotation(s):
    MSRVTT_data.json                       CLIP4Clip's merge of the two original files, or the originals:
    train_val_videodatainfo.json + test_videodatainfo.json
        {"info": ..., "videos": [{"category", "url", "video_id": "video0", "start time", "end time", "split", "id"}],
         "sentences": [{"caption", "video_id", "sen_id"}]}
        keys "start time"/"end time" hold a space; split is train | validate | test; 20 captions per video
    MSRVTT_JSFUSION_test.csv               key,vid_key,video_id,sentence: the 1k-A test set, one caption per video
    MSRVTT_train.9k.csv / MSRVTT_train.7k.csv   video_id: the 9k / 7k training lists (optional)
Videos: <root>/videos/all/videoN.mp4 (Frozen-in-Time zip), <root>/TrainValVideo/ + <root>/TestVideo/ (original),
or <root>/videos/videoN.mp4.
Splits: "train", "validate", "test" (the JSON's), "1k-A" (JSFusion CSV), "train-9k", "train-7k".
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.dataset import Dataset
from harness.errors import DataError, MissingDataError
from harness.task import Sample, SampleList
from tasks.listing import csv_records, first_existing, missing_file, read_text, rejection
from tasks.mini.clips import caption_variants, item_rng, motion_scene, scene_frames, write_h264_mp4
from tasks.mini.scenes import MOTIONS

ANNOTATION_DIRS = (".", "msrvtt_data", "annotation", "annotations")
VIDEO_DIRS = ("videos/all", "TrainValVideo", "TestVideo", "videos")
JSON_SPLITS = ("train", "validate", "test")
CSV_SPLITS = {"1k-A": "MSRVTT_JSFUSION_test.csv", "train-9k": "MSRVTT_train.9k.csv",
              "train-7k": "MSRVTT_train.7k.csv"}


@dataclass
class MSRVTTVideo:
    video_id: str
    split: str
    category: int | None
    url: str | None
    start: float | None
    end: float | None
    captions: list[tuple[int, str]]  # (sen_id, caption)


def _find(root: Path, name: str) -> Path | None:
    return first_existing(root / d / name for d in ANNOTATION_DIRS)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(str(path), f"is not valid JSON ({exc.msg})", exc.lineno) from exc


def annotation_files(root: Path) -> list[Path]:
    merged = _find(root, "MSRVTT_data.json")
    if merged is not None:
        return [merged]
    originals = [_find(root, "train_val_videodatainfo.json"), _find(root, "test_videodatainfo.json")]
    if any(p is None for p in originals):
        raise MissingDataError(MSRVTT().missing_message(
            root, "MSRVTT_data.json (or train_val_videodatainfo.json and test_videodatainfo.json)"))
    return originals  # type: ignore[return-value]


def read_video_info(paths: list[Path]) -> tuple[dict[str, MSRVTTVideo], list[dict[str, str]]]:
    """Videos with their 20 captions (sorted by sen_id) from the original or merged JSON, plus rejected entries."""
    videos: dict[str, MSRVTTVideo] = {}
    rejected: list[dict[str, str]] = []
    for path in paths:
        data = _load_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("videos"), list) \
                or not isinstance(data.get("sentences"), list):
            raise DataError(str(path), 'expected an object with "videos" and "sentences" lists')
        for i, v in enumerate(data["videos"]):
            where = f"{path}: videos[{i}]"
            try:
                vid, split = str(v["video_id"]), str(v["split"])
                if split not in JSON_SPLITS:
                    raise ValueError(f"split {split!r} is not one of {JSON_SPLITS}")
                info = MSRVTTVideo(vid, split, v.get("category"), v.get("url"), v.get("start time"),
                                   v.get("end time"), [])
            except (KeyError, TypeError, ValueError) as exc:
                rejected.append({"sample_id": str(v.get("video_id", "")) if isinstance(v, dict) else "",
                                 "path": where, "error": f"{where}: {_describe(exc)}"})
                continue
            if vid in videos:
                rejected.append({"sample_id": vid, "path": where, "error": f"{where}: {vid} is listed twice"})
                continue
            videos[vid] = info
        for i, s in enumerate(data["sentences"]):
            where = f"{path}: sentences[{i}]"
            try:
                vid, caption, sen_id = str(s["video_id"]), str(s["caption"]), int(s["sen_id"])
            except (KeyError, TypeError, ValueError) as exc:
                rejected.append({"sample_id": "", "path": where, "error": f"{where}: {_describe(exc)}"})
                continue
            if vid not in videos:
                rejected.append({"sample_id": vid, "path": where, "error": f"{where}: video {vid} is not in videos"})
                continue
            videos[vid].captions.append((sen_id, caption))
    for v in videos.values():
        v.captions.sort()
    return videos, rejected


def _describe(exc: Exception) -> str:
    return f"lacks the key {exc}" if isinstance(exc, KeyError) else str(exc)


def read_video_list(path: Path, columns: tuple[str, ...]) -> tuple[list[tuple[int, dict[str, str]]],
                                                                   list[dict[str, str]]]:
    """(line, row) of a CSV split list (JSFusion 1k-A or the 9k/7k train lists) and its rejected lines."""
    _, records = csv_records(path, required=columns)
    rows, rejected = [], []
    for line, rec, problem in records:
        if rec is not None and not (rec["video_id"].startswith("video") and rec["video_id"][5:].isdigit()):
            problem = f"video_id {rec['video_id']!r} is not of the form videoN"
        if problem is not None:
            rejected.append(rejection(path, problem, line, sample_id=(rec or {}).get("video_id", "")))
            continue
        rows.append((line, rec))
    return rows, rejected


def video_file(root: Path, video_id: str) -> Path | None:
    return first_existing(root / d / f"{video_id}.mp4" for d in VIDEO_DIRS)


def list_split(root: Path, split: str) -> SampleList:
    """Samples of a split; meta holds every caption (sorted by sen_id), and for 1k-A the query sentence."""
    videos, rejected = read_video_info(annotation_files(root))
    listing = _split_samples(root, split, videos)
    return SampleList(listing.samples, rejected + listing.rejected)


def _split_samples(root: Path, split: str, videos: dict[str, MSRVTTVideo]) -> SampleList:
    rejected: list[dict[str, str]] = []
    chosen: list[tuple[str, dict[str, Any]]] = []
    if split in JSON_SPLITS:
        chosen = [(vid, {}) for vid, v in videos.items() if v.split == split]
    elif split in CSV_SPLITS:
        path = _find(root, CSV_SPLITS[split])
        if path is None:
            raise MissingDataError(MSRVTT().missing_message(root, f"the split list {CSV_SPLITS[split]}"))
        columns = ("key", "vid_key", "video_id", "sentence") if split == "1k-A" else ("video_id",)
        rows, bad = read_video_list(path, columns)
        rejected += bad
        for line, rec in rows:
            vid = rec["video_id"]
            extra = {"query": rec["sentence"], "key": rec["key"], "vid_key": rec["vid_key"]} if split == "1k-A" else {}
            if vid not in videos and split != "1k-A":
                rejected.append(rejection(path, f"{vid} is not in the annotation JSON", line, sample_id=vid))
                continue
            chosen.append((vid, extra))
    else:
        raise ValueError(f"unknown MSR-VTT split {split!r} (known: {JSON_SPLITS + tuple(CSV_SPLITS)})")
    samples, seen = [], set()
    for vid, extra in chosen:
        if vid in seen:
            rejected.append({"sample_id": vid, "path": vid, "error": f"{split}: {vid} is listed twice"})
            continue
        seen.add(vid)
        path = video_file(root, vid)
        if path is None:
            rejected.append(missing_file(root / VIDEO_DIRS[0] / f"{vid}.mp4", vid))
            continue
        v = videos.get(vid)
        meta = {"captions": [c for _, c in v.captions] if v else [], "sen_ids": [i for i, _ in v.captions] if v else [],
                "category": v.category if v else None, "split": v.split if v else None,
                "start": v.start if v else None, "end": v.end if v else None, **extra}
        samples.append(Sample(vid, str(path), stratum=None if v is None else str(v.category), cluster=vid, meta=meta))
    return SampleList(samples, rejected)


class MSRVTT(Dataset):
    name = "msrvtt"
    mini_version = 1
    homepage = ("https://www.microsoft.com/en-us/research/publication/msr-vtt-a-large-video-description-dataset-for-"
                "bridging-video-and-language/ (videos: the Frozen-in-Time MSRVTT.zip; splits: CLIP4Clip "
                "msrvtt_data.zip)")
    layout = ("<root>/msrvtt_data/{MSRVTT_data.json,MSRVTT_JSFUSION_test.csv} (or the original *_videodatainfo.json) "
              "and <root>/videos/all/videoN.mp4 (or TrainValVideo/, TestVideo/)")

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_msrvtt_mini(out, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every video of the annotation JSON and of every split CSV present."""
        videos, rejected = read_video_info(annotation_files(root))
        samples: dict[str, Sample] = {}
        for split in JSON_SPLITS + tuple(CSV_SPLITS):
            if split in CSV_SPLITS and _find(root, CSV_SPLITS[split]) is None:
                continue
            listing = _split_samples(root, split, videos)
            known = {r["error"] for r in rejected}
            rejected += [r for r in listing.rejected if r["error"] not in known]
            for s in listing.samples:
                samples.setdefault(s.id, s)
        return SampleList(sorted(samples.values(), key=lambda s: s.id), rejected)


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
# video number -> split, following the real boundaries (train video0-6512, validate 6513-7009, test 7010-9999)
MINI_VIDEOS = {**{n: "train" for n in range(0, 6)}, **{n: "validate" for n in (6513, 6514)},
               **{n: "test" for n in (7010, 7011, 7012, 7013, 8461, 9770, 9771, 9999)}}
MINI_CAPTIONS = 20
MINI_FRAMES, MINI_FPS = 24, 24
MINI_HEIGHT, MINI_WIDTH = 144, 192
MINI_LABELS = {i: m for i, m in enumerate(MOTIONS)}  # category index -> the motion its clips show


def write_msrvtt_mini(out: Path, seed: int = 0) -> None:
    """CLIP4Clip layout: msrvtt_data/{MSRVTT_data.json, MSRVTT_JSFUSION_test.csv, MSRVTT_train.9k.csv} and
    videos/all/videoN.mp4 (16 clips of 1 s, 192x144, 24 fps), 20 captions per video from its scene description;
    category = the index of the scene's motion in tasks.mini.scenes.MOTIONS."""
    videos, sentences, one_caption = [], [], {}
    for k, (n, split) in enumerate(sorted(MINI_VIDEOS.items())):
        vid = f"video{n}"
        rng = item_rng(seed, "msrvtt", vid)
        category = k % len(MOTIONS)
        scene = motion_scene(rng, MINI_LABELS[category], MINI_FRAMES, MINI_HEIGHT, MINI_WIDTH, MINI_FPS)
        write_h264_mp4(out / "videos" / "all" / f"{vid}.mp4", scene_frames(scene), MINI_FPS)
        start = round(float(rng.uniform(0, 300)), 2)
        videos.append({"category": category, "url": f"https://www.youtube.com/watch?v=mini{n:07d}", "video_id": vid,
                       "start time": start, "end time": round(start + 10.0 + float(rng.uniform(0, 20)), 2),
                       "split": split, "id": n})
        caps = caption_variants(scene, MINI_CAPTIONS)
        one_caption[vid] = caps[int(rng.integers(0, 7))]  # 1k-A keeps one caption; one naming colour, shape, motion
        sentences += [{"caption": c, "video_id": vid} for c in caps]
    random.Random(seed).shuffle(sentences)  # the real file is not ordered by video; sen_id is global
    sentences = [{**s, "sen_id": i} for i, s in enumerate(sentences)]
    data = {"info": {"contributor": "PyraTok Bench mini split", "data_created": "2016-04-01 00:00:00",
                     "version": "1.0", "year": "2016"}, "videos": videos, "sentences": sentences}
    ann = out / "msrvtt_data"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "MSRVTT_data.json").write_bytes(json.dumps(data).encode("utf-8"))
    test = [f"video{n}" for n, s in sorted(MINI_VIDEOS.items()) if s == "test"]
    rows = ["key,vid_key,video_id,sentence\n"] + [f"ret{i},msr{v[5:]},{v},{one_caption[v]}\n" for i, v in
                                                   enumerate(test)]
    (ann / "MSRVTT_JSFUSION_test.csv").write_bytes("".join(rows).encode("utf-8"))
    train = [f"video{n}" for n, s in sorted(MINI_VIDEOS.items()) if s != "test"]
    (ann / "MSRVTT_train.9k.csv").write_bytes(("video_id\n" + "".join(f"{v}\n" for v in train)).encode("utf-8"))
