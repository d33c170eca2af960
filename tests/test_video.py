import numpy as np
import pytest
import torch

from harness.errors import DataError
from harness.video import (center_crop, probe, read_frames, resize_short_side, sample_indices, short_side_size,
                           to_model_input, to_uint8_frames, write_video)
from tests.conftest import moving_frames


@pytest.mark.parametrize("n,k,mode,kw,expected", [
    (100, 5, "center", {}, [47, 48, 49, 50, 51]),
    (10, 4, "center", {"stride": 2}, [1, 3, 5, 7]),
    (10, 3, "stride", {"start": 2, "stride": 3}, [2, 5, 8]),
    (3, 5, "center", {}, [0, 1, 2, 2, 2]),  # short video: repeat the last frame
    (3, 5, "stride", {"pad": "loop"}, [0, 1, 2, 0, 1]),
    (10, 4, "uniform", {}, [1, 3, 6, 8]),  # centres of 4 segments of 2.5 frames
    (3, 6, "uniform", {}, [0, 0, 1, 1, 2, 2]),
    (4, 0, "all", {}, [0, 1, 2, 3]),
])
def test_sample_indices(n, k, mode, kw, expected):
    assert sample_indices(n, k, mode, **kw).tolist() == expected


def test_sample_indices_rejects_nonsense():
    with pytest.raises(ValueError):
        sample_indices(0, 4)
    with pytest.raises(ValueError):
        sample_indices(10, 4, "random")


def test_short_side_and_center_crop_follow_torchvision_rounding():
    assert short_side_size(240, 320, 128) == (128, 170)
    assert short_side_size(320, 240, 128) == (170, 128)
    x = torch.arange(1 * 5 * 7 * 3).reshape(1, 5, 7, 3).to(torch.uint8)
    c = center_crop(x, 2, 3)
    assert torch.equal(c, x[:, 2:4, 2:5])  # round((5-2)/2)=2 (banker's rounding of 1.5), round((7-3)/2)=2


def test_resize_keeps_uint8_and_constant_frames_exact():
    x = torch.full((2, 30, 40, 3), 77, dtype=torch.uint8)
    y = resize_short_side(x, 12)
    assert y.dtype == torch.uint8 and tuple(y.shape) == (2, 12, 16, 3)
    assert int(y.min()) == 77 == int(y.max())


def test_model_tensor_round_trip_is_exact():
    frames = torch.from_numpy(moving_frames(5, 16, 16))
    assert torch.equal(to_uint8_frames(to_model_input(frames)), frames)
    assert to_model_input(frames).shape == (3, 5, 16, 16)


def test_lossless_write_then_read_is_exact_with_both_backends(tmp_path):
    frames = moving_frames(9, 48, 64)
    path = tmp_path / "clip.mkv"
    write_video(path, frames, 25, codec="libx264rgb", pix_fmt="rgb24", options={"qp": 0})
    info = probe(path)
    assert (info.num_frames, info.width, info.height) == (9, 64, 48)
    np.testing.assert_array_equal(read_frames(path, backend="pyav"), frames)
    np.testing.assert_array_equal(read_frames(path, [0, 4, 8], backend="pyav"), frames[[0, 4, 8]])
    np.testing.assert_array_equal(read_frames(path, [1, 2, 7], backend="decord"), frames[[1, 2, 7]])


def test_decord_and_pyav_agree_on_mpeg4_avi(tmp_path):
    path = tmp_path / "clip.avi"
    write_video(path, moving_frames(20, 48, 64), 25, codec="mpeg4", codec_tag="XVID", bit_rate=400_000)
    idx = [3, 9, 17]
    np.testing.assert_array_equal(read_frames(path, idx, backend="decord"), read_frames(path, idx, backend="pyav"))


def test_hevc_is_read_sequentially_and_exactly(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, moving_frames(16, 48, 64), 25, codec="libx265", options={"x265-params": "log-level=none"})
    assert probe(path).codec == "hevc"
    all_frames = read_frames(path, backend="pyav")
    np.testing.assert_array_equal(read_frames(path, [2, 11, 15]), all_frames[[2, 11, 15]])


def test_broken_and_short_files_raise_data_errors_naming_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(DataError) as err:
        probe(bad)
    assert str(bad) in str(err.value)
    good = tmp_path / "ok.mp4"
    write_video(good, moving_frames(6, 32, 32), 25)
    with pytest.raises(DataError, match="frame 9"):
        read_frames(good, [0, 9], backend="pyav")
    with pytest.raises(DataError):
        read_frames(good, [0, 9], backend="decord")
