"""DAVIS J&F: hand-computed cases, an independent brute-force implementation, statistics, and `score davis`."""
import argparse
import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from harness.errors import DataError
from harness.metrics.davis import (DavisJF, ObjectIdError, boundary_points, boundary_radius, near_points,
                                   pair_scores, semi_supervised_scores, seg2bmap, statistics, unsupervised_scores)
from harness.metrics.davis_files import decode_label_png_fast, read_label_png
from harness.score.davis import DavisScorer


# ---------------------------------------------------------------- an independent, loop-based reference of J and F
def brute_boundary(mask):
    """seg2bmap written pixel by pixel from its definition."""
    h, w = mask.shape
    b = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            nbrs = []
            if x + 1 < w and y + 1 < h:
                nbrs = [(y, x + 1), (y + 1, x), (y + 1, x + 1)]
            elif y == h - 1 and x + 1 < w:
                nbrs = [(y, x + 1)]
            elif x == w - 1 and y + 1 < h:
                nbrs = [(y + 1, x)]
            b[y, x] = any(mask[y, x] != mask[q] for q in nbrs)
    return b


def brute_dilate(b, r):
    out = np.zeros_like(b)
    for y, x in zip(*np.nonzero(b)):
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dy * dy + dx * dx <= r * r and 0 <= y + dy < b.shape[0] and 0 <= x + dx < b.shape[1]:
                    out[y + dy, x + dx] = True
    return out


def brute_jf(gt, pred, void=None, r=None):
    void = np.zeros_like(gt, bool) if void is None else void
    g, p = gt & ~void, pred & ~void
    union = (g | p).sum()
    j = 1.0 if union == 0 else (g & p).sum() / union
    r = math.ceil(0.008 * math.hypot(*gt.shape)) if r is None else r
    bp, bg = brute_boundary(p), brute_boundary(g)
    n_p, n_g = bp.sum(), bg.sum()
    if n_p == 0 and n_g > 0:
        prec, rec = 1, 0
    elif n_p > 0 and n_g == 0:
        prec, rec = 0, 1
    elif n_p == 0 and n_g == 0:
        prec, rec = 1, 1
    else:
        prec, rec = (bp & brute_dilate(bg, r)).sum() / n_p, (bg & brute_dilate(bp, r)).sum() / n_g
    f = 0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)
    return j, f


def square(h, w, y0, x0, size):
    m = np.zeros((h, w), bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


# ------------------------------------------------------------------------------------------------------ geometry
def test_boundary_radius_of_davis_resolutions():
    assert boundary_radius(480, 854) == 8  # ceil(7.84)
    assert boundary_radius(480, 910) == 9  # bike-packing: ceil(8.23)
    assert boundary_radius(1080, 1920) == 18
    assert boundary_radius(20, 20) == 1
    assert boundary_radius(100, 100, bound_th=3) == 3


def test_seg2bmap_of_a_square_by_hand():
    b = seg2bmap(square(12, 12, 5, 5, 4))
    # inside: the right column and bottom row (7 px); outside: the column left of it, the row above it, and the
    # pixel diagonally above-left (4 + 4 + 1 px)
    assert b.sum() == 16
    assert b[8, 5:9].all() and b[5:9, 8].all() and b[5:9, 4].all() and b[4, 5:9].all() and b[4, 4]
    assert not b[5:8, 5:8].any()


def test_seg2bmap_last_row_and_column_rules():
    m = np.zeros((4, 5), bool)
    m[3, 2] = True  # on the last row: only east/west differences count
    m[1, 4] = True  # on the last column: only south differences count
    b = seg2bmap(m)
    assert np.array_equal(b, brute_boundary(m))
    assert not b[3, 4]  # the corner is never a boundary pixel


def test_sparse_boundaries_match_the_pixel_definition(rng):
    lab = rng.integers(0, 4, (3, 9, 11)).astype(np.uint8)
    lab[:, 2:6, 3:8] = 2  # some structure besides noise
    bp = boundary_points(lab)
    for t in range(3):
        for k in (1, 2, 3):
            dense = np.zeros((9, 11), bool)
            sel = (bp.obj == k) & (bp.t == t)
            dense[bp.y[sel], bp.x[sel]] = True
            assert sel.sum() == dense.sum()  # each (object, pixel) once
            assert np.array_equal(dense, brute_boundary(lab[t] == k))


def test_near_points_is_disk_dilation(rng):
    for r in (1, 2, 5):
        tgt = rng.random((2, 30, 40)) < 0.02
        qry = rng.random((2, 30, 40)) < 0.05
        tg, ty, tx = np.nonzero(tgt)
        qg, qy, qx = np.nonzero(qry)
        got = near_points(qg, qy, qx, tg, ty, tx, r)
        want = np.concatenate([brute_dilate(tgt[i], r)[qry[i]] for i in range(2)])
        assert np.array_equal(got, want)


# ---------------------------------------------------------------------------------------------------- J and F
def test_jaccard_and_f_of_shifted_squares_by_hand():
    gt = square(20, 20, 5, 5, 4)[None]
    pred = square(20, 20, 5, 6, 4)[None]  # one column to the right
    j, f = pair_scores(gt.astype(np.uint8), pred.astype(np.uint8), 1, 1, diagonal=True)
    assert j[0, 0] == pytest.approx(12 / 20)
    # radius ceil(0.008 * 28.28) = 1: a one-pixel shift keeps every boundary pixel within the disk
    assert f[0, 0] == 1.0
    assert (j[0, 0], f[0, 0]) == pytest.approx(brute_jf(gt[0], pred[0]))


def test_f_on_a_large_frame_against_the_brute_force(rng):
    h, w = 60, 70  # radius ceil(0.008 * 92.2) = 1; use the threshold >= 1 form for a larger disk too
    gt = square(h, w, 10, 12, 25)
    gt[30:40, 40:55] = True
    pred = square(h, w, 13, 9, 24)
    pred[rng.random((h, w)) < 0.01] = True
    for r in (None, 4):
        j, f = pair_scores(gt[None].astype(np.uint8), pred[None].astype(np.uint8), 1, 1, diagonal=True,
                           bound_th=r or 0.008)
        assert (j[0, 0], f[0, 0]) == pytest.approx(brute_jf(gt, pred, r=r), abs=1e-15)
        assert 0 < f[0, 0] < 1


def test_empty_masks_special_cases():
    gt = square(10, 10, 2, 2, 4).astype(np.uint8)
    empty = np.zeros_like(gt)
    j, f = pair_scores(np.stack([gt, empty, empty]), np.stack([empty, gt, empty]), 1, 1, diagonal=True)
    assert j[0].tolist() == [0.0, 0.0, 1.0]  # empty union -> J = 1
    # empty prediction: P = 1, R = 0 -> F = 0; empty truth: P = 0, R = 1 -> F = 0; both empty: F = 1
    assert f[0].tolist() == [0.0, 0.0, 1.0]


def test_void_pixels_are_excluded_in_unsupervised_mode():
    gt = np.zeros((3, 20, 20), np.uint8)
    gt[:, 4:8, 4:8] = 1
    gt[:, 10:14, 4:8] = 255  # void
    pred = gt.copy()
    pred[gt == 255] = 1  # predicting object 1 over the void region costs nothing
    j, f, ids = unsupervised_scores(gt, pred)
    assert j.tolist() == [[1.0] * 3] and f.tolist() == [[1.0] * 3] and ids.tolist() == [1]
    # the same prediction scored without void handling (semi-supervised) is penalized
    js, _ = semi_supervised_scores(gt, pred)
    assert js[0, 0] == pytest.approx(16 / 32)


def test_unsupervised_hungarian_matching_with_swapped_and_extra_ids():
    gt = np.zeros((4, 24, 24), np.uint8)
    gt[:, 2:8, 2:8], gt[:, 12:20, 12:20] = 1, 2
    pred = np.zeros_like(gt)
    pred[gt == 1], pred[gt == 2] = 2, 1  # ids swapped
    pred[:, 20:23, 0:3] = 3  # a spurious object
    j, f, ids = unsupervised_scores(gt, pred)
    assert j.shape == (2, 4) and np.all(j == 1) and np.all(f == 1)
    assert sorted(ids.tolist()) == [1, 2]
    with pytest.raises(ObjectIdError):
        unsupervised_scores(gt, np.full_like(gt, 21))


# ------------------------------------------------------------------------------------------------- statistics
def test_statistics_mean_recall_and_decay_binning():
    x = np.arange(7) * 0.1  # n = 7: bin edges round(linspace(1, 7, 5) + 1e-10) - 1 = [0, 2, 3, 5, 6]
    mean, recall, decay = statistics(x)
    assert mean == pytest.approx(0.3)
    assert recall == pytest.approx(1 / 7)  # only 0.6 > 0.5
    # bin 0 = x[0:3] (2.5 rounds up thanks to the 1e-10; banker's rounding would give x[0:2]); bin 3 = x[5:7]
    assert decay == pytest.approx(0.1 - 0.55)
    assert statistics(np.ones(4)) == (1.0, 1.0, 0.0)


def test_semi_supervised_object_count_missing_ids_and_excess_ids():
    gt = np.zeros((2, 10, 10), np.uint8)
    gt[:, 1:4, 1:4], gt[:, 6:9, 6:9] = 1, 2
    pred = np.where(gt == 1, 1, 0).astype(np.uint8)  # object 2 never predicted
    j, f = semi_supervised_scores(gt, pred)
    assert j[:, 0].tolist() == [1.0, 0.0] and f[:, 0].tolist() == [1.0, 0.0]
    with pytest.raises(ObjectIdError):
        semi_supervised_scores(gt, gt + 1)
    later = gt.copy()
    later[1, 0, 0] = 5  # an id that only appears after the first frame is background
    assert semi_supervised_scores(later, gt)[0].shape == (2, 2)


def test_davis_jf_drops_first_and_last_frames_and_averages_objects():
    gt = np.zeros((5, 12, 12), np.uint8)
    gt[:, 2:6, 2:6] = 1
    wrong_ends = gt.copy()
    wrong_ends[[0, 4]] = 0
    m = DavisJF()
    m.update("one", gt, wrong_ends)  # perfect on the scored frames 1..3
    two = gt.copy()
    two[:, 7:11, 7:11] = 2
    pred = two.copy()
    pred[pred == 2] = 0  # object 2 missed entirely
    m.update("two", two, pred)
    r = m.compute()
    # objects: one_1 (J 1), two_1 (J 1), two_2 (J 0): object-level mean 2/3, not the sequence-level 3/4
    assert r["J-Mean"] == pytest.approx(2 / 3) and r["F-Mean"] == pytest.approx(2 / 3)
    assert r["J&F-Mean"] == pytest.approx((r["J-Mean"] + r["F-Mean"]) / 2)
    assert r["per_sequence"]["two"]["J-Mean"] == pytest.approx(0.5)
    assert set(r["per_object"]) == {"one_1", "two_1", "two_2"}
    assert r["variant"] == "davis2017-semi-supervised"


# -------------------------------------------------------------------------------------------------- PNG reading
def _png(rows: np.ndarray, filters: list[int], colour: int = 3) -> bytes:
    h, w = rows.shape

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(bytes([f]) + r.tobytes() for f, r in zip(filters, rows))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
    if colour == 3:
        body += chunk(b"PLTE", bytes(range(256)) * 3)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_fast_png_decoder_agrees_with_pil(tmp_path, rng):
    lab = rng.integers(0, 5, (17, 23)).astype(np.uint8)
    im = Image.fromarray(lab)
    im.putpalette(list(range(256)) * 3)
    im.save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    assert np.array_equal(decode_label_png_fast(data), np.array(Image.open(tmp_path / "a.png")))
    # rows written with the Sub and Up filters decode to the same values
    filt = lab.copy()
    filt[1] = np.diff(lab[1], prepend=0).astype(np.uint8)  # Sub
    filt[2] = (lab[2].astype(int) - lab[1]).astype(np.uint8)  # Up
    filters = [0, 1, 2] + [0] * 14
    (tmp_path / "f.png").write_bytes(_png(filt, filters))
    assert np.array_equal(decode_label_png_fast((tmp_path / "f.png").read_bytes()), lab)
    assert np.array_equal(np.array(Image.open(tmp_path / "f.png")), lab)
    assert decode_label_png_fast(_png(filt, [4] + [0] * 16)) is None  # Paeth: left to PIL
    assert np.array_equal(read_label_png(tmp_path / "a.png"), lab)


# ------------------------------------------------------------------------------------------------ score davis
def _write_label(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(arr.astype(np.uint8))
    im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    im.save(path)


def _davis_root(tmp_path, frames=5):
    root, res = tmp_path / "DAVIS", tmp_path / "results"
    (root / "ImageSets/2017").mkdir(parents=True)
    (root / "ImageSets/2017/val.txt").write_text("seq\n")
    for t in range(frames):
        gt = np.zeros((40, 60), np.uint8)
        gt[5 + t:15 + t, 5:20], gt[20:30, 30 + t:45 + t] = 1, 2
        gt[0:2, 0:4] = 255
        _write_label(root / f"Annotations/480p/seq/{t:05d}.png", gt)
        pred = np.where(gt == 255, 0, gt)
        pred[5 + t, 5:20] = 0  # one row missing from object 1
        _write_label(res / f"seq/{t:05d}.png", pred)
    return root, res


def _args(root, res, task="semi-supervised"):
    return argparse.Namespace(davis_root=str(root), results=str(res), set="val", task=task, resolution="480p")


def test_score_davis_end_to_end(tmp_path):
    root, res = _davis_root(tmp_path)
    r = DavisScorer().score(_args(root, res))
    assert r["objects"] == 2
    assert r["per_sequence"]["seq"]["J-Mean"] == pytest.approx((135 / 150 + 1) / 2)  # object 1 misses one row of 15 px
    assert r["J-Recall"] == 1.0 and r["J-Decay"] == pytest.approx(0.0)
    for key in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"):
        assert 0 <= r[key] <= 1 or key.endswith("Decay")
    assert "J&F-Mean" in DavisScorer().table(r)


def test_score_davis_errors_name_the_file(tmp_path):
    root, res = _davis_root(tmp_path)
    (res / "seq/00002.png").unlink()
    with pytest.raises(DataError, match="00002.png"):
        DavisScorer().score(_args(root, res))
    _write_label(res / "seq/00002.png", np.zeros((40, 61)))
    with pytest.raises(DataError, match=r"00002.png.*61x40"):
        DavisScorer().score(_args(root, res))
    _write_label(res / "seq/00002.png", np.full((40, 60), 3))
    with pytest.raises(DataError, match=r"00002.png.*object id 3"):
        DavisScorer().score(_args(root, res))
    Image.new("RGB", (60, 40)).save(res / "seq/00002.png")
    with pytest.raises(DataError, match=r"00002.png.*RGB"):
        DavisScorer().score(_args(root, res))
    # frames 0 and N-1 are not scored, so their result files may be absent
    _write_label(res / "seq/00002.png", np.zeros((40, 60)))
    (res / "seq/00000.png").unlink()
    (res / "seq/00004.png").unlink()
    assert DavisScorer().score(_args(root, res))["objects"] == 2
