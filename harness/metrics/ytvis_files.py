"""Reading YouTube-VIS annotation and results files into `Track`s, for `score ytvis`.

Annotations (`instances.json` of YouTube-VIS 2019/2021, OVIS): `videos` [{id, height, width, length|file_names}],
`categories` [{id, name}], `annotations` [{id, video_id, category_id, segmentations: [RLE | polygons | null per
frame], areas, iscrowd}]. Results: `[{video_id, category_id, score, segmentations: [RLE | null per frame]}]` with
compressed RLEs (uncompressed ones are accepted too). Every malformed entry raises `DataError` naming the file and
the entry's index.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from harness.errors import DataError, MissingDataError
from harness.metrics.vis import Track


def _load(path: Path, what: str):
    if not path.is_file():
        raise MissingDataError(f"{path}: {what} not found")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(str(path), f"is not valid JSON ({e.msg})", e.lineno) from None


def segmentation_problem(seg, h: int, w: int, allow_polygons: bool = True) -> str | None:
    """Why one frame's segmentation is not a mask of an h x w video (None when it is one, or is absent: null or
    empty). Accepted: polygons (a list of coordinate lists), an RLE {"size": [h, w], "counts": str | bytes | list}."""
    if not seg:
        return None
    if isinstance(seg, list):
        if not allow_polygons:
            return "polygons are not accepted in results; use RLE"
        if not all(isinstance(p, list) and all(isinstance(c, (int, float)) for c in p) for p in seg):
            return "polygons must be lists of coordinates"
        return None
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        return "expected an RLE {'size': [h, w], 'counts': ...} or null"
    if not isinstance(seg["size"], (list, tuple)) or list(seg["size"]) != [h, w]:
        return f"mask size {seg['size']} differs from the video's [{h}, {w}]"
    if not isinstance(seg["counts"], (str, bytes, list)):
        return "'counts' must be a string or a list"
    return None


def segmentation_rle(seg, h: int, w: int, allow_polygons: bool = True):
    """One frame's segmentation as a compressed RLE, None where the instance is absent, exactly as the YouTube-VIS
    API's annToRLE: polygons are merged, an uncompressed RLE (list counts) goes through frPyObjects, a compressed one
    is taken as is. ValueError naming the problem otherwise. The one decoder of this format (the data set reader
    tasks/ytvis2021.py uses it too)."""
    problem = segmentation_problem(seg, h, w, allow_polygons)
    if problem:
        raise ValueError(problem)
    if not seg:
        return None
    if isinstance(seg, list):
        try:
            return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
        except Exception as e:  # pycocotools raises bare Exceptions on bad polygons
            raise ValueError(f"bad polygon ({e})") from None
    counts = seg["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects(seg, h, w)
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def video_size(entry) -> tuple:
    """(id, height, width, frames) of a `videos` entry: frames = `length`, or the number of `file_names`.
    KeyError, TypeError or ValueError when the entry lacks them."""
    n = int(entry["length"]) if "length" in entry else len(entry["file_names"])
    return entry["id"], int(entry["height"]), int(entry["width"]), n


def _to_rle(seg, h: int, w: int, path: Path, where: str, allow_polygons: bool):
    """One frame's mask as a compressed RLE (None where the instance is absent); DataError naming the entry."""
    try:
        return segmentation_rle(seg, h, w, allow_polygons)
    except ValueError as e:
        raise DataError(str(path), f"{where}: {e}") from None


def read_ytvis_annotations(path: str | Path) -> tuple[dict, list, list[Track]]:
    """(videos {id: (height, width, frames)}, category ids in file order, true tracks)."""
    path = Path(path)
    data = _load(path, "YouTube-VIS annotation file (instances.json of the valid/train split)")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("videos", "categories",
                                                                                       "annotations")):
        raise DataError(str(path), "expected an object with lists 'videos', 'categories' and 'annotations'")
    videos = {}
    for i, v in enumerate(data["videos"]):
        try:
            vid, height, width, n = video_size(v)
            videos[vid] = (height, width, n)
        except (KeyError, TypeError, ValueError):
            raise DataError(str(path), f"videos[{i}]: needs id, height, width and length (or file_names)") from None
    cats = []
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or "id" not in c:
            raise DataError(str(path), f"categories[{i}]: needs an id")
        cats.append(c["id"])
    tracks = []
    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        video, segs = _video_and_segs(ann, videos, path, where)
        h, w, _ = videos[video]
        rles = [_to_rle(s, h, w, path, f"{where}.segmentations[{t}]", True) for t, s in enumerate(segs)]
        areas = ann.get("areas")
        avg = None
        if isinstance(areas, list):  # the reference's avg_area comes from the annotation's own areas
            vals = [a for a in areas if a]
            avg = float(np.array(vals).mean()) if vals else 0.0
        tracks.append(Track(video, ann.get("category_id"), rles, iscrowd=bool(ann.get("iscrowd", 0)), avg_area=avg))
    return videos, cats, tracks


def _video_and_segs(entry, videos: dict, path: Path, where: str):
    if not isinstance(entry, dict):
        raise DataError(str(path), f"{where}: expected an object")
    video = entry.get("video_id")
    if video not in videos:
        raise DataError(str(path), f"{where}: video_id {video!r} is not a video of the annotation file")
    segs = entry.get("segmentations")
    n = videos[video][2]
    if not isinstance(segs, list) or len(segs) != n:
        got = len(segs) if isinstance(segs, list) else type(segs).__name__
        raise DataError(str(path), f"{where}: 'segmentations' must list one mask or null per frame ({n}), got {got}")
    return video, segs


def read_ytvis_results(path: str | Path, videos: dict, categories: list) -> list[Track]:
    """Predicted tracks of a results file, checked against the annotation file's videos and categories."""
    path = Path(path)
    data = _load(path, "results file")
    if not isinstance(data, list):
        raise DataError(str(path), "expected a list of {video_id, category_id, score, segmentations}")
    known = set(categories)
    tracks = []
    for i, r in enumerate(data):
        where = f"[{i}]"
        video, segs = _video_and_segs(r, videos, path, where)
        if r.get("category_id") not in known:
            raise DataError(str(path), f"{where}: category_id {r.get('category_id')!r} is not in the annotation "
                                       "file's categories")
        score = r.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise DataError(str(path), f"{where}: 'score' must be a finite number, got {score!r}")
        h, w, _ = videos[video]
        rles = [_to_rle(s, h, w, path, f"{where}.segmentations[{t}]", False) for t, s in enumerate(segs)]
        tracks.append(Track(video, r["category_id"], rles, score=float(score)))
    return tracks
