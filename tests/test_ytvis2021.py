import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from harness.cli import main
from harness.errors import DataError
from tasks.mini.vocab import YTVIS_MINI_CATEGORIES
from tasks.ytvis2021 import (MINI_ANNOTATED_VALID, decode_segmentation, encode_uncompressed_rle, list_ytvis,
                             load_ytvis, load_ytvis_video, write_ytvis_mini)


@pytest.fixture(scope="module")
def ytvis_mini(cache_root) -> Path:
    from harness.dataset import ensure_mini

    return ensure_mini("ytvis2021", cache_root=cache_root)


def test_uncompressed_rle_round_trips_through_pycocotools():
    rng = np.random.default_rng(3)
    masks = [rng.random((9, 13)) < 0.4, np.zeros((4, 5), bool), np.ones((4, 5), bool)]
    m = np.zeros((6, 7), bool)
    m[0, 0] = m[5, 6] = True  # runs touching both corners
    masks.append(m)
    for m in masks:
        rle = encode_uncompressed_rle(m)
        assert all(isinstance(c, int) for c in rle["counts"]) and sum(rle["counts"]) == m.size
        assert np.array_equal(decode_segmentation(rle, *m.shape), m)
        coco = mask_utils.frPyObjects(rle, *m.shape)  # what the YouTube-VIS API does with a list `counts`
        assert np.array_equal(mask_utils.decode(coco).astype(bool), m)


def _hand_made_ytvis(root: Path) -> dict:
    """train/ with RLE as list counts, compressed string counts, polygons and nulls; string ids; valid/ without
    annotations, as the public file."""
    h, w = 6, 8
    a = np.zeros((h, w), bool)
    a[1:4, 2:6] = True
    b = np.zeros((h, w), bool)
    b[3:6, 0:3] = True
    compressed = mask_utils.encode(np.asfortranarray(b.astype(np.uint8)))
    compressed = {"size": [h, w], "counts": compressed["counts"].decode("ascii")}
    polygon = [[2.0, 1.0, 6.0, 1.0, 6.0, 4.0, 2.0, 4.0]]
    names = ["0a1b2c3d4e/00000.jpg", "0a1b2c3d4e/00005.jpg", "0a1b2c3d4e/00010.jpg"]
    for split in ("train", "valid"):
        for n in names:
            p = root / split / "JPEGImages" / n
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(p)
    video = {"id": "1", "width": w, "height": h, "length": 3, "file_names": names}
    cats = [{"id": 1, "name": "earless_seal", "supercategory": "animal"}, {"id": "2", "name": "person"}]
    anns = [{"id": 1, "video_id": 1, "category_id": "2", "iscrowd": 0,
             "segmentations": [encode_uncompressed_rle(a), None, polygon], "areas": [12, None, 12],
             "bboxes": [[2, 1, 4, 3], None, [2, 1, 4, 3]]},
            {"id": 2, "video_id": 1, "category_id": 1, "segmentations": [None, compressed, None]},
            {"id": 3, "video_id": 1, "category_id": 1, "segmentations": [None, None]},  # wrong length
            {"id": 4, "video_id": 7, "category_id": 1, "segmentations": [None, None, None]}]  # unknown video
    (root / "train" / "instances.json").write_text(json.dumps({"videos": [video], "categories": cats,
                                                               "annotations": anns}))
    (root / "valid" / "instances.json").write_text(json.dumps({"videos": [video], "categories": cats}))
    return {"a": a, "b": b}


def test_reader_parses_the_real_quirks(tmp_path):
    masks = _hand_made_ytvis(tmp_path)
    db = load_ytvis(tmp_path / "train" / "instances.json")
    assert db.categories == {1: "earless_seal", 2: "person"} and db.has_annotations
    assert [i.id for i in db.instances[1]] == [1, 2]
    problems = {r["path"].rsplit(":", 1)[1]: r["error"] for r in db.rejected}
    assert set(problems) == {"annotations[2]", "annotations[3]"}
    assert "2 segmentations for a video of 3 frames" in problems["annotations[2]"]
    assert "video_id 7" in problems["annotations[3]"]
    listing = list_ytvis(tmp_path, "train")
    (s,) = listing.samples
    assert s.id == "train/0a1b2c3d4e" and s.meta["categories"] == ["earless_seal", "person"]
    clip = load_ytvis_video(db, 1, s.meta["frame_root"])
    assert clip.frames.shape == (3, 6, 8, 3) and clip.masks.shape == (2, 3, 6, 8)
    assert clip.present.tolist() == [[True, False, True], [False, True, False]]
    assert np.array_equal(clip.masks[0, 0], masks["a"]) and np.array_equal(clip.masks[1, 1], masks["b"])
    assert not clip.masks[0, 1].any()
    poly = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([[2.0, 1.0, 6.0, 1.0, 6.0, 4.0, 2.0, 4.0]],
                                                                      6, 8)))
    assert np.array_equal(clip.masks[0, 2], poly.astype(bool))
    assert clip.category_ids.tolist() == [2, 1] and clip.id_map().max() == 2


def test_valid_without_annotations_needs_a_user_json(tmp_path):
    _hand_made_ytvis(tmp_path)
    with pytest.raises(DataError) as err:
        list_ytvis(tmp_path, "valid")
    assert "no annotations" in str(err.value) and "server" in str(err.value)
    assert len(list_ytvis(tmp_path, "valid", require_annotations=False).samples) == 1
    listing = list_ytvis(tmp_path, "valid", annotations=tmp_path / "train" / "instances.json")
    assert listing.samples[0].meta["num_instances"] == 2


def test_mini_split_has_the_ytvis_layout_and_signal(ytvis_mini):
    train = list_ytvis(ytvis_mini, "train")
    assert len(train.samples) == 4 and not train.rejected
    with pytest.raises(DataError):
        list_ytvis(ytvis_mini, "valid")
    valid = list_ytvis(ytvis_mini, "valid", annotations=ytvis_mini / MINI_ANNOTATED_VALID)
    assert len(valid.samples) == 2
    raw = json.loads((ytvis_mini / "train" / "instances.json").read_text())
    assert {c["name"]: c["id"] for c in raw["categories"]} == YTVIS_MINI_CATEGORIES
    segs = [s for a in raw["annotations"] for s in a["segmentations"]]
    assert None in segs and all(isinstance(s["counts"], list) for s in segs if s)  # uncompressed RLE and nulls
    sizes = set()
    for listing, json_path in ((train, ytvis_mini / "train" / "instances.json"),
                               (valid, ytvis_mini / MINI_ANNOTATED_VALID)):
        db = load_ytvis(json_path)
        seen = set()
        for s in listing.samples:
            assert [n.split("/")[1] for n in s.meta["file_names"]][:3] == ["00000.jpg", "00005.jpg", "00010.jpg"]
            clip = load_ytvis_video(db, s.meta["video_id"], s.meta["frame_root"])
            sizes.add(clip.frames.shape[1:3])
            seen |= {db.categories[int(c)] for c in clip.category_ids}
            anns = {a["id"]: a for a in json.loads(Path(json_path).read_text())["annotations"]}
            for n, inst_id in enumerate(clip.instance_ids):
                a = anns[int(inst_id)]
                assert [x is not None for x in a["segmentations"]] == clip.present[n].tolist()
                assert [int(m.sum()) for m in clip.masks[n] if m.any()] == [x for x in a["areas"] if x is not None]
                # signal: the instance's pixels are the rendered object, whose colour stays the same in every frame
                means = np.array([clip.frames[t][clip.masks[n, t]].mean(0) for t in np.flatnonzero(clip.present[n])
                                  if clip.masks[n, t].sum() > 30])
                assert len(means) and np.abs(means - means.mean(0)).max() < 40
        assert seen == set(YTVIS_MINI_CATEGORIES)  # every category in both splits
    assert sizes == {(144, 256), (144, 192)}


def test_mini_split_is_byte_deterministic(ytvis_mini, tmp_path):
    write_ytvis_mini(tmp_path, seed=0)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(ytvis_mini) for p in ytvis_mini.rglob("*")
                           if p.is_file() and p.name != ".complete")
    assert all(filecmp.cmp(ytvis_mini / f, tmp_path / f, shallow=False) for f in files)


def test_check_data_passes_on_the_mini_split(ytvis_mini, capsys):
    assert main(["check-data", "--dataset", "ytvis2021", "--data-root", str(ytvis_mini), "--no-progress"]) == 0
    assert "6 items listed, 6 decoded" in capsys.readouterr().out


def test_check_data_reports_planted_faults_precisely(ytvis_mini, tmp_path):
    root = tmp_path / "ytvis"
    shutil.copytree(ytvis_mini, root)
    data = json.loads((root / "train" / "instances.json").read_text())
    names = [v["file_names"] for v in data["videos"]]
    missing = root / "train" / "JPEGImages" / names[0][2]
    missing.unlink()  # a missing frame
    truncated = root / "train" / "JPEGImages" / names[1][1]
    truncated.write_bytes(truncated.read_bytes()[:200])  # a truncated frame
    shutil.rmtree(root / "valid" / "JPEGImages" / json.loads((root / "valid" / "instances.json").read_text())[
        "videos"][0]["file_names"][0].split("/")[0])  # a missing video folder
    data["annotations"][0]["segmentations"] = data["annotations"][0]["segmentations"][:-1]  # malformed annotation
    (root / "train" / "instances.json").write_text(json.dumps(data))
    out = tmp_path / "report.json"
    assert main(["check-data", "--dataset", "ytvis2021", "--data-root", str(root), "--no-progress",
                 "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    rejected = [r["error"] for r in report["rejected"]]
    assert any("annotations[0]" in e and "segmentations for a video of" in e for e in rejected)
    assert any("frame folder" in e and "is missing" in e for e in rejected)
    undecodable = {u["sample_id"]: u["error"] for u in report["undecodable"]}
    assert str(missing) in undecodable[f"train/{names[0][0].split('/')[0]}"]
    assert str(truncated) in undecodable[f"train/{names[1][0].split('/')[0]}"]
