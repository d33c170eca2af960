import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.dataset import ensure_mini
from harness.errors import DataError
from tasks.coco import MINI_CATEGORIES, MINI_ITEMS, list_split, read_image, write_coco_mini
from tests.datasets_helpers import assert_identity_is_perfect, check_data, run_task, same_bytes, truncate


@pytest.fixture(scope="module")
def coco_mini(cache_root):
    return ensure_mini("coco", cache_root=cache_root)


def _hand_made_copy(root: Path) -> None:
    images = [{"id": 397133, "file_name": "000000397133.jpg", "height": 30, "width": 40},
              {"id": 37777, "file_name": "000000037777.jpg", "height": 40, "width": 30},
              {"id": 252219, "file_name": "000000252219.jpg", "height": 30, "width": 40}]
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps({
        "info": {}, "licenses": [], "images": images,
        "annotations": [{"id": 1, "image_id": 397133, "caption": "A man in a kitchen. "},
                        {"id": 2, "image_id": 397133, "caption": "a kitchen"},
                        {"id": 3, "image_id": 37777, "caption": "a fridge"},
                        {"id": 4, "image_id": 5, "caption": "an image that is not listed"}]}))
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps({
        "info": {}, "licenses": [], "images": images[:2],
        "annotations": [{"id": 9, "image_id": 397133, "category_id": 90, "bbox": [1, 2, 3, 4], "area": 12,
                         "iscrowd": 0, "segmentation": [[1, 2, 4, 2, 4, 6]]}],
        "categories": [{"id": 90, "name": "toothbrush", "supercategory": "indoor"}]}))
    (root / "val2017").mkdir()
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(root / "val2017" / "000000397133.jpg")
    Image.fromarray(np.full((40, 30), 90, np.uint8)).save(root / "val2017" / "000000037777.jpg")  # greyscale


def test_reader_uses_both_annotation_files(tmp_path):
    _hand_made_copy(tmp_path)
    listing = list_split(tmp_path)
    got = {s.id: (s.meta["image_id"], s.meta["captions"], s.meta["instances"]) for s in listing.samples}
    assert got == {"000000397133": (397133, ["A man in a kitchen.", "a kitchen"], 1),
                   "000000037777": (37777, ["a fridge"], 0)}
    errors = sorted(r["error"] for r in listing.rejected)
    assert errors == [f"{tmp_path / 'annotations' / 'captions_val2017.json'}: annotation id 4: image_id 5 is not "
                      "among the file's images",
                      f"{tmp_path / 'val2017' / '000000252219.jpg'}: file is missing"]
    grey = read_image(tmp_path / "val2017" / "000000037777.jpg")
    assert grey.shape == (1, 40, 30, 3) and (grey[..., 0] == grey[..., 2]).all()


def test_bad_json_names_the_line(tmp_path):
    _hand_made_copy(tmp_path)
    (tmp_path / "annotations" / "instances_val2017.json").write_text('{"images": [\n\n{"id": 1,,}]}')
    with pytest.raises(DataError) as err:
        list_split(tmp_path)
    assert f"{tmp_path / 'annotations' / 'instances_val2017.json'}:3:" in str(err.value)


def test_mini_split_has_the_real_format(coco_mini):
    names = sorted(p.name for p in (coco_mini / "val2017").iterdir())
    assert len(names) == len(MINI_ITEMS) and all(len(n) == 16 and n[:12].isdigit() for n in names)
    inst = json.loads((coco_mini / "annotations" / "instances_val2017.json").read_text())
    caps = json.loads((coco_mini / "annotations" / "captions_val2017.json").read_text())
    assert set(inst) == {"info", "licenses", "images", "annotations", "categories"}
    assert set(caps) == {"info", "licenses", "images", "annotations"}
    assert [c["id"] for c in inst["categories"]] == sorted(MINI_CATEGORIES.values()) != list(range(1, 5))
    listing = list_split(coco_mini)
    assert len(listing.samples) == 12 and not listing.rejected
    assert all(len(s.meta["captions"]) == 5 for s in listing.samples)
    sizes = {(s.meta["width"], s.meta["height"]) for s in listing.samples}
    assert any(w > h for w, h in sizes) and any(h > w for w, h in sizes)
    modes = [Image.open(s.path).mode for s in listing.samples]
    assert modes.count("L") == 1 and modes.count("RGB") == 11
    by_id = {s.meta["image_id"]: s for s in listing.samples}
    for ann in inst["annotations"]:  # each shape's bbox holds its colour, and the caption names the shape
        s = by_id[ann["image_id"]]
        shape = {v: k for k, v in MINI_CATEGORIES.items()}[ann["category_id"]]
        assert any(shape in c for c in s.meta["captions"])
        x, y, w, h = ann["bbox"]
        assert 0 <= x and x + w <= s.meta["width"] + 1e-6 and 0 < ann["area"] <= w * h
    assert len(inst["annotations"]) == 8


def test_mini_split_is_byte_deterministic(coco_mini, tmp_path):
    write_coco_mini(tmp_path, seed=0)
    assert same_bytes(coco_mini, tmp_path) == 14


def test_check_data_passes_on_the_mini_split_and_names_planted_faults(coco_mini, tmp_path):
    code, report = check_data("coco", coco_mini, tmp_path / "ok.json")
    assert code == 0 and report["listed"] == report["decoded"] == 12
    root = tmp_path / "coco"
    shutil.copytree(coco_mini, root)
    samples = list_split(root).samples
    missing, truncated = Path(samples[0].path), Path(samples[1].path)
    missing.unlink()
    truncate(truncated, 0.5)
    caps = root / "annotations" / "captions_val2017.json"
    data = json.loads(caps.read_text())
    data["annotations"].append({"id": 1, "image_id": 123, "caption": "no such image"})
    caps.write_text(json.dumps(data))
    code, report = check_data("coco", root, tmp_path / "bad.json")
    assert code == 1
    errors = [r["error"] for r in report["rejected"]]
    assert errors == [f"{caps}: annotation id 1: image_id 123 is not among the file's images",
                      f"{missing}: file is missing"]
    assert [u["path"] for u in report["undecodable"]] == [str(truncated)]


@pytest.mark.slow
def test_coco_recon_single_frames_end_to_end(coco_mini, tmp_path):
    """One-frame clips: identity exact; downsample (its causal first group is the frame alone) and h264 (one
    I-frame) both run and stay within their bit budgets."""
    res = run_task("coco-recon", "identity", tmp_path / "r", tmp_path / "c")
    assert_identity_is_perfect(res, 12, 1)
    assert res["task"]["protocol"]["num_frames"] == 1 and res["task"]["protocol"]["crop"] == 256
    down = run_task("coco-recon", "downsample", tmp_path / "r", tmp_path / "c", "--limit", "6")["metrics"]
    assert 12 < down["psnr_frame"]["value"] < 40 and 0.2 < down["ssim"]["value"] < 0.99
    assert down["bpp"]["value"] == pytest.approx(8 * 3 / 64)  # 8-bit RGB per 8x8 block, one latent frame
    h264 = run_task("coco-recon", "h264", tmp_path / "r", tmp_path / "c", "--limit", "4")["metrics"]
    assert 12 < h264["psnr_frame"]["value"] < 50
    assert h264["bpp"]["value"] <= 16 * 32 * 32 / (256 * 256) + 1e-9  # a 16-bit 1x32x32 token budget
