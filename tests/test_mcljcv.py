import shutil

import numpy as np
import pytest

from harness.dataset import ensure_mini
from harness.errors import DataError
from tasks.mcljcv import MINI_FRAMES, MINI_SOURCES, list_clips, list_sources, parse_name, read_yuv420, \
    rgb_to_yuv420, write_mcljcv_mini, yuv420_to_rgb
from tests.datasets_helpers import assert_downsample_is_lossy, check_data, run_task, same_bytes, truncate


@pytest.fixture(scope="module")
def mcl_mini(cache_root):
    return ensure_mini("mcljcv", cache_root=cache_root)


def _reference_rgb(y: float, cb: float, cr: float, kr: float, kb: float, full: bool) -> np.ndarray:
    """Textbook inverse of Y'CbCr (ITU-R BT.601/BT.709 section 3), in float64, for one sample."""
    y, cb, cr = float(y), float(cb), float(cr)
    if full:
        ey, epb, epr = y / 255, (cb - 128) / 255, (cr - 128) / 255
    else:
        ey, epb, epr = (y - 16) / 219, (cb - 128) / 224, (cr - 128) / 224
    r = ey + 2 * (1 - kr) * epr
    b = ey + 2 * (1 - kb) * epb
    g = (ey - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.rint(np.array([r, g, b]) * 255), 0, 255)


@pytest.mark.parametrize("matrix,kr,kb", [("bt709", 0.2126, 0.0722), ("bt601", 0.299, 0.114)])
@pytest.mark.parametrize("full", [False, True])
def test_conversion_matches_the_standard_formulas(matrix, kr, kb, full, rng):
    y = rng.integers(0, 256, (2, 4, 6), dtype=np.uint8)
    u = rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)
    v = rng.integers(0, 256, (2, 2, 3), dtype=np.uint8)
    out = yuv420_to_rgb(y, u, v, matrix, full)
    assert out.shape == (2, 4, 6, 3) and out.dtype == np.uint8
    for n, i, j in [(0, 0, 0), (0, 1, 1), (1, 3, 5), (1, 2, 4), (0, 3, 0)]:
        ref = _reference_rgb(y[n, i, j], u[n, i // 2, j // 2], v[n, i // 2, j // 2], kr, kb, full)
        assert np.abs(out[n, i, j].astype(int) - ref).max() <= 1  # float32 vs float64 at .5 boundaries
    grey = yuv420_to_rgb(np.full((1, 2, 2), 126, np.uint8), *(np.full((1, 1, 1), 128, np.uint8),) * 2, matrix)
    assert (grey == round((126 - 16) * 255 / 219)).all()


def test_conversion_agrees_with_ffmpeg_swscale(rng):
    """An independent implementation: libswscale through PyAV, on chroma that is constant over the frame (so the
    chroma upsampling filter does not matter); swscale's fixed-point arithmetic is within 3 levels."""
    import av

    for matrix, colorspace in (("bt709", "itu709"), ("bt601", "itu601")):
        y = rng.integers(16, 236, (16, 32), dtype=np.uint8)
        u, v = (np.full((8, 16), int(rng.integers(40, 216)), np.uint8) for _ in range(2))
        frame = av.VideoFrame(32, 16, "yuv420p")
        for plane, arr in zip(frame.planes, (y, u, v)):
            buf = np.zeros((plane.height, plane.line_size), np.uint8)
            buf[:, :arr.shape[1]] = arr
            plane.update(buf.tobytes())
        ref = frame.reformat(format="rgb24", src_colorspace=colorspace, src_color_range="MPEG",
                             interpolation="POINT").to_ndarray()
        ours = yuv420_to_rgb(y[None], u[None], v[None], matrix)[0]
        assert np.abs(ref.astype(int) - ours).max() <= 3
        other = yuv420_to_rgb(y[None], u[None], v[None], "bt601" if matrix == "bt709" else "bt709")[0]
        assert np.abs(ref.astype(int) - other).max() > 3  # the matrix matters


def test_size_and_rate_come_from_the_name_and_frames_are_memory_mapped(tmp_path, rng):
    frames = rng.integers(0, 256, (5, 6, 10, 3), dtype=np.uint8)
    path = tmp_path / "videoSRC07_10x6_25.yuv"
    data = rgb_to_yuv420(frames)
    assert len(data) == 5 * 10 * 6 * 3 // 2
    path.write_bytes(data)
    src = parse_name(path)
    assert (src.number, src.width, src.height, src.fps, src.num_frames()) == (7, 10, 6, 25.0, 5)
    got = read_yuv420(path, [4, 0])
    planes = np.frombuffer(data, np.uint8).reshape(5, -1)
    y4 = planes[4, :60].reshape(6, 10)
    u4, v4 = planes[4, 60:75].reshape(3, 5), planes[4, 75:].reshape(3, 5)
    assert np.array_equal(got[0], yuv420_to_rgb(y4[None], u4[None], v4[None])[0])
    smooth = np.broadcast_to(np.array([180, 60, 90], np.uint8), (1, 6, 10, 3))
    (tmp_path / "videoSRC08_10x6_30.yuv").write_bytes(rgb_to_yuv420(smooth))
    assert np.abs(read_yuv420(tmp_path / "videoSRC08_10x6_30.yuv").astype(int) - smooth).max() <= 1
    assert read_yuv420(path, [1], width=10, height=6).shape == (1, 6, 10, 3)
    with pytest.raises(DataError, match="not named"):
        parse_name(tmp_path / "src07.yuv")
    truncate(path, 0.9)
    with pytest.raises(DataError, match="not a whole number"):
        read_yuv420(path, [0])


def test_sources_are_cut_into_whole_clips(tmp_path):
    (tmp_path / "videoSRC02_4x2_30.yuv").write_bytes(bytes(12 * 40))  # 40 frames -> 2 clips of 17
    (tmp_path / "videoSRC03_4x2_24.yuv").write_bytes(bytes(12 * 10))  # too short for a clip
    (tmp_path / "videoSRC04_4x2_25.yuv").write_bytes(bytes(12 * 20 + 5))  # truncated
    (tmp_path / "notes_4x2.yuv").write_bytes(b"")
    listing = list_clips(tmp_path, 17)
    assert [(s.id, s.meta["indices"][0], s.meta["indices"][-1]) for s in listing.samples] == [
        ("videoSRC02/clip000", 0, 16), ("videoSRC02/clip001", 17, 33)]
    errors = sorted(r["error"] for r in listing.rejected)
    assert len(errors) == 3
    assert errors[0].startswith(f"{tmp_path / 'notes_4x2.yuv'}: is not named")
    assert "has 10 frames, fewer than one clip of 17" in errors[1]
    assert "245 bytes, not a whole number" in errors[2]
    assert [s.meta["indices"] for s in list_clips(tmp_path, 5, stride=2).samples][:2] == [
        [0, 2, 4, 6, 8], [9, 11, 13, 15, 17]]


def test_mini_split_has_the_real_format(mcl_mini):
    sources, rejected = list_sources(mcl_mini)
    assert not rejected and [s.number for s in sources] == sorted(MINI_SOURCES)
    for s in sources:
        assert s.fps == MINI_SOURCES[s.number][0] and s.num_frames() == MINI_FRAMES
        assert s.path.name == f"videoSRC{s.number:02d}_{s.width}x{s.height}_{int(s.fps)}.yuv"
    clips = list_clips(mcl_mini, 17)
    assert len(clips.samples) == 2 * len(MINI_SOURCES) and not clips.rejected


def test_mini_split_is_byte_deterministic(mcl_mini, tmp_path):
    write_mcljcv_mini(tmp_path, seed=0)
    assert same_bytes(mcl_mini, tmp_path) == len(MINI_SOURCES)


def test_check_data_passes_on_the_mini_split_and_reports_a_truncated_source(mcl_mini, tmp_path):
    code, report = check_data("mcljcv", mcl_mini, tmp_path / "ok.json")
    assert code == 0 and report["listed"] == report["decoded"] == len(MINI_SOURCES)
    root = tmp_path / "mcl"
    shutil.copytree(mcl_mini, root)
    truncated = next(root.glob("videoSRC05_*.yuv"))
    truncate(truncated, 0.97)
    (root / "videoSRC5_384x216.yuv").write_bytes(b"")
    code, report = check_data("mcljcv", root, tmp_path / "bad.json")
    assert code == 1
    assert [r["error"] for r in report["rejected"]] == [
        f"{root / 'videoSRC5_384x216.yuv'}: is not named videoSRC<NN>_<W>x<H>_<fps>.yuv"]
    assert [u["path"] for u in report["undecodable"]] == [str(truncated)]
    assert "not a whole number" in report["undecodable"][0]["error"]


@pytest.mark.slow
def test_mcljcv_recon_end_to_end(mcl_mini, tmp_path):
    res = run_task("mcljcv-recon", "downsample", tmp_path / "r", tmp_path / "c", "--limit", "1")
    assert_downsample_is_lossy(res, 1)
    p = res["task"]["protocol"]
    assert (p["num_frames"], p["crop"], p["matrix"], p["full_range"]) == (17, 256, "bt709", False)
