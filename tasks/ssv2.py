"""Something-Something v2: the reader for its real layout and the mini split (classification tasks build on it).

Layout (20bn-something-something-v2-?? parts unpacked, labels.zip unpacked):
    <root>/20bn-something-something-v2/<id>.webm     VP9, 12 fps, height 240, variable width
    <root>/labels/{labels,train,validation,test}.json  (or <root>/; the older 20BN names
                                                         something-something-v2-{labels,train,validation,test}.json)
    labels.json       {"<template without brackets>": "<class index as a string>", ...}
    train.json, validation.json   [{"id": "74225", "label": "...", "template": "... [something] ...",
                                    "placeholders": ["..."]}, ...]
    test.json         [{"id": "..."}, ...]
Class index = int(labels[template.replace("[", "").replace("]", "")]) (mmaction2 and SlowFast), never `label`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.dataset import Dataset
from harness.errors import DataError, MissingDataError
from harness.task import Sample, SampleList
from tasks.listing import first_existing, missing_file, read_text
from tasks.mini.clips import item_rng, motion_scene, scene_frames, write_vp9_webm

VIDEO_DIR = "20bn-something-something-v2"
LABEL_DIRS = ("labels", ".")
FILES = {"labels": ("labels.json", "something-something-v2-labels.json"),
         "train": ("train.json", "something-something-v2-train.json"),
         "validation": ("validation.json", "something-something-v2-validation.json"),
         "test": ("test.json", "something-something-v2-test.json")}
SPLITS = ("train", "validation", "test")


def strip_template(template: str) -> str:
    """'Moving [something] up' -> 'Moving something up', the key of labels.json."""
    return template.replace("[", "").replace("]", "")


def find_file(root: Path, kind: str) -> Path | None:
    return first_existing(root / d / name for d in LABEL_DIRS for name in FILES[kind])


def _load_json(path: Path) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(str(path), f"is not valid JSON ({exc.msg})", exc.lineno) from exc


def read_labels(path: Path) -> dict[str, int]:
    """labels.json -> {template without brackets: class index}; the file stores the index as a string."""
    data = _load_json(path)
    if not isinstance(data, dict) or not data:
        raise DataError(str(path), "expected a non-empty object {template: index}")
    out = {}
    for template, idx in data.items():
        if not (isinstance(idx, str) and idx.isdigit()):
            raise DataError(str(path), f"the index of {template!r} is {idx!r}, expected a digit string like \"0\"")
        out[template] = int(idx)
    if sorted(out.values()) != list(range(len(out))):
        raise DataError(str(path), "class indices are not 0..N-1, each once")
    return out


def read_split(path: Path, labels: dict[str, int] | None) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Entries of train/validation/test.json with their class index (None for test), and rejected entries."""
    data = _load_json(path)
    if not isinstance(data, list):
        raise DataError(str(path), "expected a list of {id, label, template, placeholders} objects")
    entries, rejected, seen = [], [], set()
    for i, e in enumerate(data):
        where = f"{path}: [{i}]"
        vid = e.get("id") if isinstance(e, dict) else None
        problem = None
        if not isinstance(vid, str) or not vid.isdigit():
            problem = f"id {vid!r} is not a string of digits"
        elif vid in seen:
            problem = f"id {vid} is listed twice"
        elif labels is not None and "template" in e:
            key = strip_template(str(e["template"]))
            if key not in labels:
                problem = f"template {e['template']!r} (as {key!r}) is not in labels.json"
        if problem is None:
            seen.add(vid)
            template = e.get("template")
            entries.append({"id": vid, "template": template, "label_text": e.get("label"),
                            "placeholders": list(e.get("placeholders") or []),
                            "label": labels[strip_template(template)] if labels is not None and template else None})
        else:
            rejected.append({"sample_id": str(vid or ""), "path": where, "error": f"{where}: {problem}"})
    return entries, rejected


def video_path(root: Path, vid: str) -> Path:
    return root / VIDEO_DIR / f"{vid}.webm"


def list_split(root: Path, split: str = "validation") -> SampleList:
    if split not in SPLITS:
        raise ValueError(f"unknown SSv2 split {split!r} (known: {SPLITS})")
    labels_path, split_path = find_file(root, "labels"), find_file(root, split)
    if labels_path is None or split_path is None:
        what = FILES["labels" if labels_path is None else split][0]
        raise MissingDataError(SSv2().missing_message(root, f"labels/{what}"))
    labels = read_labels(labels_path)
    names = {i: t for t, i in labels.items()}
    entries, rejected = read_split(split_path, labels)
    samples = []
    for e in entries:
        path = video_path(root, e["id"])
        if not path.exists():
            rejected.append(missing_file(path, e["id"]))
            continue
        cls = None if e["label"] is None else names[e["label"]]
        samples.append(Sample(e["id"], str(path), stratum=cls, cluster=e["id"],
                              meta={"label": e["label"], "class": cls, "template": e["template"],
                                    "placeholders": e["placeholders"], "label_text": e["label_text"]}))
    return SampleList(samples, rejected)


class SSv2(Dataset):
    name = "ssv2"
    mini_version = 1
    homepage = "https://www.qualcomm.com/developer/software/something-something-v-2-dataset (videos and labels.zip)"
    layout = "<root>/20bn-something-something-v2/<id>.webm and <root>/labels/{labels,train,validation,test}.json"

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_ssv2_mini(out, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every video of train/validation/test.json (each file must exist)."""
        samples: dict[str, Sample] = {}
        rejected: list[dict[str, str]] = []
        for split in SPLITS:
            listing = list_split(root, split)
            rejected += listing.rejected
            for s in listing.samples:
                samples.setdefault(s.id, s)
        return SampleList(sorted(samples.values(), key=lambda s: s.id), rejected)


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
# Real SSv2 templates whose action a one-object scene performs: template -> scene motion.
MINI_LABELS = {
    "Approaching [something] with your camera": "grows",
    "Moving [something] down": "moves down",
    "Moving [something] from left to right": "slides right",
    "Moving [something] from right to left": "slides left",
    "Moving [something] up": "moves up",
    "Moving away from [something] with your camera": "shrinks",
    "Spinning [something] so it continues spinning": "spins",
}
MINI_PER_CLASS = {"train": 1, "validation": 2}
MINI_TEST = 3
MINI_FRAMES, MINI_FPS, MINI_HEIGHT = 24, 12, 240  # 2 s at the real 12 fps and height
MINI_WIDTHS = (320, 427, 240, 352)  # variable width, as in the real videos (427 is odd: VP9 allows it)


def write_ssv2_mini(out: Path, seed: int = 0) -> None:
    """labels/{labels,train,validation,test}.json and 20bn-something-something-v2/<id>.webm (VP9, 12 fps, height
    240, widths 240-427): 7 classes, 1 train and 2 validation clips each, 3 test clips. The placeholder is the
    scene's object ("red square")."""
    templates = sorted(MINI_LABELS, key=strip_template)  # class indices in the order of the stripped templates
    labels = {strip_template(t): str(i) for i, t in enumerate(templates)}
    used: set[int] = set()
    splits: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    k = 0
    for split in SPLITS:
        count = MINI_PER_CLASS.get(split, 0)
        jobs = [(t, j) for t in templates for j in range(count)] if count else \
            [(templates[(j * 2) % len(templates)], j) for j in range(MINI_TEST)]
        for template, j in jobs:
            rng = item_rng(seed, "ssv2", split, template, j)
            vid = int(rng.integers(1, 220_848))
            while vid in used:
                vid += 1
            used.add(vid)
            width = MINI_WIDTHS[k % len(MINI_WIDTHS)]
            k += 1
            scene = motion_scene(rng, MINI_LABELS[template], MINI_FRAMES, MINI_HEIGHT, width, MINI_FPS)
            write_vp9_webm(out / VIDEO_DIR / f"{vid}.webm", scene_frames(scene), MINI_FPS)
            obj = scene.objects[0]
            thing = f"{obj.color} {obj.shape}"
            if split == "test":
                splits[split].append({"id": str(vid)})
            else:
                text = template.replace("[something]", thing)
                splits[split].append({"id": str(vid), "label": text[0].lower() + text[1:], "template": template,
                                      "placeholders": [thing]})
    folder = out / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.json").write_bytes(json.dumps(labels, indent=4).encode("utf-8"))
    for split in SPLITS:
        (folder / f"{split}.json").write_bytes(json.dumps(splits[split]).encode("utf-8"))
