"""The semantic stage of PyraTok's tiny recipe: causal conv laterals for the shallow levels, mean-pooled alignment,
text-free encoding during alignment, no decoding when reconstruction is off, starting from another run's weights,
and the stage's promise that the decoded path (hence reconstruction) stays bit-identical."""
import numpy as np
import pytest
import torch

from models.pyratok.lapq import LaPQ, CausalLateral
from models.pyratok.losses import clip_caption_scores

SMALL = {"base_dim": 8, "levels": 2, "text_width": 384, "codebook_bits": 4, "residual_stages": 2,
         "lateral_kernel": 3, "lateral_depth": 2, "align_negatives": 4, "ar_window": 32}


def test_causal_lateral_keeps_the_grid_and_never_reads_later_frames():
    torch.manual_seed(0)
    lat = CausalLateral(3, 5, kernel=3, depth=2)
    x = torch.randn(2, 3, 6, 7, 9)
    y = lat(x)
    assert y.shape == (2, 5, 6, 7, 9)
    x2 = x.clone()
    x2[:, :, 4:] = torch.randn(2, 3, 2, 7, 9)
    y2 = lat(x2)
    assert torch.equal(y[:, :, :4], y2[:, :, :4]) and not torch.allclose(y[:, :, 4], y2[:, :, 4])
    # two 3-frame causal layers: step t sees frames t-4..t, so frame 0 reaches steps 0..4 and not step 5
    x3 = x.clone()
    x3[:, :, 0] += 1.0
    assert torch.equal(lat(x3)[:, :, 5:], y[:, :, 5:]) and not torch.allclose(lat(x3)[:, :, 4], y[:, :, 4])
    with pytest.raises(ValueError, match="odd"):
        CausalLateral(3, 5, kernel=2)


def test_only_the_shallow_levels_get_the_conv_lateral():
    chans = {"stage1": 4, "stage2": 8, "latent": 16}
    strides = {"stage1": (2, 4, 4), "stage2": (4, 8, 8), "latent": (4, 8, 8)}
    q = LaPQ(chans, strides, levels=3, bits=4, dim=8, heads=2, text_dim=8, lateral_kernel=3, lateral_depth=2)
    assert [type(b.lateral).__name__ for b in q.blocks] == ["CausalLateral", "CausalLateral", "Conv3d"]
    assert q.blocks[-1].lateral.kernel_size == (1, 1, 1)
    paper = LaPQ(chans, strides, levels=3, bits=4, dim=8, heads=2, text_dim=8)
    assert all(isinstance(b.lateral, torch.nn.Conv3d) and b.lateral.kernel_size == (1, 1, 1) for b in paper.blocks)


def test_mean_pooling_scores_the_cosine_of_the_mean_token():
    z = torch.tensor([[[[[1.0, 3.0]]], [[[0.0, 2.0]]]]]).reshape(1, 2, 1, 1, 2)  # 2 tokens (1,0) and (3,2)
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    s = clip_caption_scores(z, e, pooling="mean")  # mean token (2, 1)
    expect = torch.tensor([[2 / 5 ** 0.5, 1 / 5 ** 0.5, 1.0]])
    assert torch.allclose(s, expect, atol=1e-6)
    text = clip_caption_scores(z, e, pooling="text")  # the softmax pooling differs: it favours the matching token
    assert not torch.allclose(text, expect)
    with pytest.raises(ValueError, match="align_pooling"):
        clip_caption_scores(z, e, pooling="max")


@pytest.fixture(scope="module")
def small_model():
    from models.pyratok.config import get_config
    from models.pyratok.model import PyraTokModel

    torch.manual_seed(0)
    cfg, _ = get_config("tiny-semantic", dict(SMALL))
    return PyraTokModel(cfg)


def test_alignment_is_learned_from_text_free_encoding_and_nothing_is_decoded(small_model, monkeypatch):
    m = small_model
    seen = []
    forward = m.quantizer.forward
    monkeypatch.setattr(m.quantizer, "forward", lambda feats, text=None, semantic=None: seen.append(text) or forward(feats, text, semantic))
    monkeypatch.setattr(m, "decode_value", lambda *a, **k: pytest.fail("the semantic stage must not decode"))
    video = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    caps = ["a red square slides left over a brick wall", "a blue circle spins over a cloudy sky"]
    terms = m.training_losses(video, caps, ["a green diamond grows"], torch.Generator().manual_seed(0))
    assert not bool(seen[-1].has_text.any())  # text_condition 0: LaPQ saw the null token
    assert float(terms["l1"]) == 0.0 and "_recon" not in terms
    assert float(terms["text_align"].detach()) > 0 and torch.isfinite(terms["total"].detach())
    m.cfg = m.cfg.replace(text_condition=1.0)
    try:
        m.training_losses(video, caps, [], torch.Generator().manual_seed(0))
        assert bool(seen[-1].has_text.all())
    finally:
        m.cfg = m.cfg.replace(text_condition=0.0)


def test_init_from_copies_matching_weights_and_names_the_fresh_ones(tmp_path):
    from models.pyratok.config import get_config
    from models.pyratok.model import PyraTokModel
    from models.pyratok.train import load_matching
    from models.tokenizer.checkpoint import save_weights

    torch.manual_seed(1)
    src = PyraTokModel(get_config("tiny", {**SMALL, "lateral_kernel": 1, "lateral_depth": 1})[0])
    save_weights(src, tmp_path / "b.safetensors")
    torch.manual_seed(2)
    dst = PyraTokModel(get_config("tiny-semantic", dict(SMALL))[0])
    fresh = load_matching(dst, tmp_path / "b")
    assert fresh and all(n.startswith("quantizer.blocks.0.lateral") for n in fresh)
    s, d = src.state_dict(), dst.state_dict()
    assert all(torch.equal(s[k], d[k]) for k in d if k not in fresh)
    with pytest.raises(FileNotFoundError, match="init_from"):
        load_matching(dst, tmp_path / "missing")


@pytest.mark.slow
def test_semantic_stage_changes_the_shallow_levels_and_keeps_reconstruction_bit_identical(tmp_path):
    from models.pyratok.config import get_config
    from models.pyratok.model import PyraTokModel
    from models.pyratok.train import train
    from models.tokenizer.checkpoint import load_weights, save_weights

    torch.manual_seed(0)
    start = PyraTokModel(get_config("tiny", {**SMALL, "lateral_kernel": 1, "lateral_depth": 1})[0]).eval()
    save_weights(start, tmp_path / "start.safetensors")
    args = {**SMALL, "steps": 2, "batch_size": 2, "crop": 32, "clip_frames": 5, "log_every": 1, "threads": 0,
            "lr": 1e-2, "init_from": str(tmp_path / "start")}  # the start has 1x1x1 laterals: theirs stay fresh
    # a last level that reads the shallow codes would change with them: refused before training
    with pytest.raises(ValueError, match="prev projection is non-zero"):
        train("tiny-semantic", data="scenes", out=str(tmp_path / "refused"), model_args=args, progress=False)
    with torch.no_grad():  # the structured start's last level ignores them
        start.quantizer.blocks[-1].prev.weight.zero_()
        start.quantizer.blocks[-1].prev.bias.zero_()
    save_weights(start, tmp_path / "start.safetensors")
    assert train("tiny-semantic", data="scenes", out=str(tmp_path / "run"), model_args=args, progress=False) == 0
    tuned = PyraTokModel(get_config("tiny-semantic", dict(SMALL))[0]).eval()
    load_weights(tuned, tmp_path / "run" / "model.safetensors")
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        a, b = start.quantize(x, None), tuned.quantize(x, None)
        assert torch.equal(a.levels[-1].z, b.levels[-1].z)
        assert torch.equal(start.decode_value(a.quantized), tuned.decode_value(b.quantized))
        assert not torch.allclose(a.levels[0].z, b.levels[0].z)  # the shallow level was trained


def test_strided_scene_clips_repeat_the_last_frame_past_the_end():
    from models.tokenizer.data import strided_window

    assert strided_window(span=10, frames=4, step=3, start=0).tolist() == [0, 3, 6, 9]
    assert strided_window(span=10, frames=5, step=3, start=2).tolist() == [2, 5, 8, 9, 9]
    rng = np.random.default_rng(0)
    for _ in range(50):
        span, frames, step = int(rng.integers(5, 30)), int(rng.integers(1, 9)), int(rng.integers(1, 5))
        idx = strided_window(span, frames, step, rng=rng)
        assert len(idx) == frames and idx.min() >= 0 and idx.max() <= span - 1 and np.all(np.diff(idx) >= 0)
