import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from harness.metrics.pixel import (PSNR_CAP_DB, frame_mse, pooled_psnr, psnr_from_mse, ssim_frames,
                                   video_fidelity)
from tests.conftest import moving_frames


def test_psnr_hand_computed():
    a = np.zeros((2, 16, 16, 3), np.uint8)
    b = a.copy()
    b[0] += 10  # frame 0: mse 100 -> 10 log10(65025/100) = 28.1308...; frame 1 identical
    mse = frame_mse(a, b)
    assert mse.tolist() == [100.0, 0.0]
    per_frame = psnr_from_mse(mse)
    assert per_frame[0].item() == pytest.approx(10 * math.log10(255 ** 2 / 100))
    assert per_frame[1].item() == PSNR_CAP_DB
    fid = video_fidelity(a, b)
    assert fid.psnr_frame == pytest.approx((per_frame[0].item() + PSNR_CAP_DB) / 2)
    assert fid.psnr_video == pytest.approx(10 * math.log10(255 ** 2 / 50))
    assert fid.identical_frames == 1 and fid.frames == 2


def test_three_psnr_reductions_are_ordered_as_the_concavity_of_log_says():
    ref = moving_frames(8, 32, 32, seed=1)
    rng = np.random.default_rng(0)
    noisy = np.clip(ref + rng.normal(0, np.linspace(2, 30, 8)[:, None, None, None], ref.shape), 0, 255)
    fid = video_fidelity(ref, noisy.round().astype(np.uint8))
    other = video_fidelity(ref, np.clip(ref.astype(int) + 40, 0, 255).astype(np.uint8))
    pooled = pooled_psnr(fid.sse + other.sse, fid.values + other.values)
    assert fid.psnr_frame > fid.psnr_video
    assert np.mean([fid.psnr_video, other.psnr_video]) >= pooled


@pytest.mark.parametrize("variant,kwargs", [
    ("gaussian11", dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)),
    ("skimage-uniform7", dict()),
])
def test_ssim_matches_skimage(variant, kwargs):
    ref = moving_frames(3, 40, 56, seed=2)
    rng = np.random.default_rng(3)
    rec = np.clip(ref + rng.normal(0, 12, ref.shape), 0, 255).round().astype(np.uint8)
    expected = [structural_similarity(a, b, data_range=255, channel_axis=-1, **kwargs) for a, b in zip(ref, rec)]
    np.testing.assert_allclose(ssim_frames(ref, rec, variant).numpy(), expected, atol=1e-10)


def test_ssim_of_identical_frames_is_one_and_shapes_are_checked():
    x = moving_frames(2, 24, 24)
    assert torch.allclose(ssim_frames(x, x), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError):
        ssim_frames(x, x[:, :20])
    with pytest.raises(ValueError, match="smaller than"):
        ssim_frames(x[:, :8, :8], x[:, :8, :8])
