import numpy as np
import pytest
import torch

from harness.video import to_model_input, to_uint8_frames
from models.baselines.codec import H264Adapter, tokenizer_bits
from models.baselines.downsample import DownsampleAdapter, causal_groups, temporal_weights
from models.baselines.identity import IdentityAdapter
from tests.conftest import moving_frames


def test_causal_groups_match_a_4x_causal_tokenizer():
    assert causal_groups(17, 4) == [(0, 1), (1, 5), (5, 9), (9, 13), (13, 17)]
    assert causal_groups(1, 4) == [(0, 1)]
    assert causal_groups(7, 4) == [(0, 1), (1, 5), (5, 7)]


def test_temporal_weights_interpolate_between_group_centres():
    w = temporal_weights(causal_groups(9, 4), 9)
    assert torch.allclose(w.sum(1), torch.ones(9))
    assert w[0].tolist() == [1, 0, 0]  # frame 0 is its own group
    assert w[5].tolist() == pytest.approx([0, 0.375, 0.625])  # centres 0, 2.5, 6.5
    assert w[1].tolist() == pytest.approx([0.6, 0.4, 0])


def test_downsample_is_exact_on_constant_video_and_counts_its_bits():
    video = torch.full((2, 3, 17, 128, 128), 0.2)
    tokens, out = DownsampleAdapter().reconstruct(video)
    assert torch.allclose(out, torch.full_like(out, round(1.2 * 127.5) / 127.5 - 1), atol=1e-6)
    assert tokens.bits.tolist() == [8.0 * 3 * 5 * 16 * 16] * 2  # 8-bit RGB on the 5x16x16 grid
    assert tokens.bits_per_pixel()[0].item() == pytest.approx(8 * 3 * 5 * 256 / (17 * 128 * 128))


def test_identity_is_exact():
    video = to_model_input(torch.from_numpy(moving_frames(5, 16, 16)))[None]
    tokens, out = IdentityAdapter().reconstruct(video)
    assert torch.equal(out, video) and tokens.bits_per_pixel().item() == 24


def test_h264_fits_the_tokenizer_budget_and_decodes_the_right_shape():
    frames = torch.from_numpy(np.stack([moving_frames(17, 64, 64, seed=s) for s in range(2)]))
    video = to_model_input(frames)
    model = H264Adapter()
    tokens, out = model.reconstruct(video)
    budget = tokenizer_bits(17, 64, 64)  # 5 x 8 x 8 tokens x 16 bits
    assert budget == 5 * 8 * 8 * 16
    assert (tokens.bits <= budget).all() and (tokens.bits > 0).all()
    assert out.shape == video.shape
    err = (to_uint8_frames(out).float() - frames.float()).abs().mean()
    assert 0 < err < 40
    generous = H264Adapter(bpp=2.0).reconstruct(video)
    assert (generous[0].bits > tokens.bits).all()
    assert (to_uint8_frames(generous[1]).float() - frames.float()).abs().mean() < err
