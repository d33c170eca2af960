import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from harness.cli import main
from harness.errors import DataError
from tasks.davis2017 import (VOC_PALETTE, list_davis, load_davis_sequence, num_objects, read_davis_masks,
                             read_mask_png, write_davis_mask, write_davis_mini)


@pytest.fixture(scope="module")
def davis_mini(cache_root) -> Path:
    from harness.dataset import ensure_mini

    return ensure_mini("davis2017", cache_root=cache_root)


def _png_chunks(path: Path) -> dict[bytes, int]:
    raw, pos, out = path.read_bytes(), 8, {}
    while pos < len(raw):
        n = int.from_bytes(raw[pos:pos + 4], "big")
        out[raw[pos + 4:pos + 8]] = n
        pos += 12 + n
    return out


def test_voc_palette_matches_the_pascal_colour_map():
    assert VOC_PALETTE.shape == (256, 3)
    assert VOC_PALETTE[:6].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128],
                                        [128, 0, 128]]
    assert VOC_PALETTE[255].tolist() == [224, 224, 192]  # the VOC void colour
    assert len({tuple(c) for c in VOC_PALETTE.tolist()}) == 256


def test_mask_png_round_trip_keeps_ids_and_writes_the_full_palette(tmp_path):
    ids = np.zeros((7, 11), np.uint8)
    ids[1:3, 2:5], ids[4:6, 6:9], ids[0, :] = 1, 2, 255
    path = tmp_path / "00000.png"
    write_davis_mask(path, ids)
    with Image.open(path) as im:
        assert im.mode == "P" and len(im.getpalette()) == 768
    assert _png_chunks(path)[b"PLTE"] == 768  # 256 entries, as in the DAVIS files
    assert np.array_equal(read_mask_png(path), ids)
    assert num_objects(ids) == 2  # void is not an object


def test_rgb_and_grayscale_masks_are_refused_with_a_clear_error(tmp_path):
    rgb = tmp_path / "rgb.png"
    Image.fromarray(VOC_PALETTE[np.array([[0, 1], [2, 1]])]).save(rgb)
    with pytest.raises(DataError) as err:
        read_mask_png(rgb)
    assert str(rgb) in str(err.value) and "mode-RGB" in str(err.value) and "mode P" in str(err.value)
    gray = tmp_path / "gray.png"
    Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8)).save(gray)
    with pytest.raises(DataError):
        read_mask_png(gray)
    assert read_mask_png(gray, allow_grayscale=True).tolist() == [[0, 1], [2, 1]]


def _hand_made_davis(root: Path) -> Path:
    """A DAVIS folder with the real quirks: mode-P VOC masks, void 255, two widths, a bad ImageSets line."""
    davis = root / "DAVIS"
    rng = np.random.default_rng(0)
    for seq, (h, w), n in (("bike-packing", (6, 15), 4), ("blackswan", (6, 12), 3)):
        for t in range(n):
            (davis / "JPEGImages" / "480p" / seq).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
                davis / "JPEGImages" / "480p" / seq / f"{t:05d}.jpg")
            ids = np.zeros((h, w), np.uint8)
            ids[1:3, 1:4] = 1
            if seq == "bike-packing":
                ids[3:5, 6:9] = 2
                if t:
                    ids[0, :] = 255  # void from frame 1 on
            write_davis_mask(davis / "Annotations" / "480p" / seq / f"{t:05d}.png", ids)
    (davis / "ImageSets" / "2017").mkdir(parents=True)
    (davis / "ImageSets" / "2017" / "val.txt").write_bytes(b"bike-packing\nblackswan\nnot a name\ncows\n")
    return davis


def test_reader_parses_the_real_quirks(tmp_path):
    davis = _hand_made_davis(tmp_path)
    for root in (tmp_path, davis):  # --data-root may be DAVIS/ or the folder holding it
        listing = list_davis(root, "val")
        assert [s.id for s in listing.samples] == ["bike-packing", "blackswan"]
    errors = [r["error"] for r in listing.rejected]
    assert any(f"{davis / 'ImageSets/2017/val.txt'}:3" in e and "not a name" in e for e in errors)
    assert any("cows" in e and "folder is missing" in e and "val.txt:4" in e for e in errors)
    seq = load_davis_sequence(tmp_path, "bike-packing")
    assert seq.frames.shape == (4, 6, 15, 3) and seq.masks.shape == (4, 6, 15)
    assert seq.num_objects == 2 and (seq.masks[1:, 0] == 255).all() and (seq.ids[1:, 0] == 0).all()
    assert seq.void.sum() == 3 * 15
    assert load_davis_sequence(tmp_path, "blackswan").frames.shape[2] == 12
    assert read_davis_masks(tmp_path, "blackswan").max() == 1


def test_missing_and_misnumbered_frames_are_named(tmp_path):
    davis = _hand_made_davis(tmp_path)
    (davis / "JPEGImages" / "480p" / "blackswan" / "00001.jpg").unlink()
    with pytest.raises(DataError, match="00001 is missing"):
        load_davis_sequence(tmp_path, "blackswan")
    (davis / "Annotations" / "480p" / "bike-packing" / "00003.png").rename(
        davis / "Annotations" / "480p" / "bike-packing" / "0003.png")
    with pytest.raises(DataError, match="not a 5-digit frame number"):
        load_davis_sequence(tmp_path, "bike-packing")


def test_mini_split_has_the_davis_layout_and_quirks(davis_mini):
    davis = davis_mini / "DAVIS"
    val, train = list_davis(davis_mini, "val"), list_davis(davis_mini, "train")
    assert len(val.samples) == 4 and len(train.samples) == 3 and not val.rejected and not train.rejected
    names16 = (davis / "ImageSets" / "2016" / "val.txt").read_text().split()
    assert len(names16) == 2 and set(names16) <= {s.id for s in val.samples}
    raw = (davis / "ImageSets" / "2017" / "val.txt").read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    widths = set()
    for s in val.samples + train.samples:
        seq = load_davis_sequence(davis_mini, s.id)
        widths.add(seq.frames.shape[2])
        assert seq.frames.shape[1] == 240 and len(seq.stems) >= 5
        first = seq.masks[0]
        assert 255 not in first and set(np.unique(first)) == set(range(seq.num_objects + 1))  # ids 0..K in frame 0
        assert (seq.masks[1:] == 255).any()  # a void band around the objects from frame 1 on
        # the void band lies on background pixels next to an object: objects keep their exact rendered pixels
        band = seq.masks[1:] == 255
        fg = seq.ids[1:] > 0
        grown = binary_dilation(fg, structure=np.ones((1, 3, 3), bool))
        assert not (band & fg).any() and (band <= grown).all()
        unsup = read_davis_masks(davis_mini, s.id, kind="unsupervised")
        assert np.array_equal(unsup, seq.masks)
        # signal: each object keeps its colour through the sequence and differs from the other objects
        for k in range(1, seq.num_objects + 1):
            means = np.array([seq.frames[t][seq.ids[t] == k].mean(0) for t in range(len(seq.stems))
                              if (seq.ids[t] == k).sum() > 30])
            assert len(means) and np.abs(means - means.mean(0)).max() < 40, (s.id, k)
    assert widths == {427, 455}
    with Image.open(next((davis / "Annotations" / "480p").glob("*/00001.png"))) as im:
        assert im.mode == "P" and im.getpalette() == VOC_PALETTE.flatten().tolist()


def test_mini_split_is_byte_deterministic(davis_mini, tmp_path):
    write_davis_mini(tmp_path, seed=0)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    cached = sorted(p.relative_to(davis_mini) for p in davis_mini.rglob("*") if p.is_file() and p.name != ".complete")
    assert files == cached and len(files) > 100
    assert all(filecmp.cmp(davis_mini / f, tmp_path / f, shallow=False) for f in files)


def test_check_data_passes_on_the_mini_split(davis_mini, capsys):
    assert main(["check-data", "--dataset", "davis2017", "--data-root", str(davis_mini), "--no-progress"]) == 0
    assert "7 items listed, 7 decoded" in capsys.readouterr().out


def test_check_data_reports_planted_faults_precisely(davis_mini, tmp_path):
    root = tmp_path / "davis"
    shutil.copytree(davis_mini, root)
    davis = root / "DAVIS"
    seqs = sorted(p.name for p in (davis / "JPEGImages" / "480p").iterdir())
    (davis / "JPEGImages" / "480p" / seqs[0] / "00004.jpg").unlink()  # a missing frame
    rgb = davis / "Annotations" / "480p" / seqs[1] / "00002.png"  # a mask saved as RGB colours
    with Image.open(rgb) as im:
        im.convert("RGB").save(rgb)
    unsup = davis / "Annotations_unsupervised" / "480p" / seqs[2] / "00001.png"  # a truncated mask
    unsup.write_bytes(unsup.read_bytes()[:60])
    shutil.rmtree(davis / "JPEGImages" / "480p" / seqs[3])  # a missing sequence folder
    val = davis / "ImageSets" / "2017" / "val.txt"
    val.write_bytes(val.read_bytes() + b"two names\n")
    n_lines = len(val.read_bytes().splitlines())
    out = tmp_path / "report.json"
    assert main(["check-data", "--dataset", "davis2017", "--data-root", str(root), "--no-progress",
                 "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    rejected = [r["error"] for r in report["rejected"]]
    assert any(f"{val}:{n_lines}" in e and "two names" in e for e in rejected)
    assert any(str(davis / "JPEGImages" / "480p" / seqs[3]) in e and "missing" in e for e in rejected)
    undecodable = {u["sample_id"]: u["error"] for u in report["undecodable"]}
    assert set(undecodable) == {seqs[0], seqs[1], seqs[2]}
    assert "00004 is missing" in undecodable[seqs[0]]
    assert str(rgb) in undecodable[seqs[1]] and "mode-RGB" in undecodable[seqs[1]]
    assert str(unsup) in undecodable[seqs[2]]
