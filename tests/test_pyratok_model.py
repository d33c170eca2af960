"""The PyraTok model on a tiny backbone (base_dim 8, 9x32x32 clips): encoder taps and latent frame counts against
diffusers, the adapter's Tokens (bits, levels, round trip), features and strides, the AR prior, tiling seams."""
import pytest
import torch

from models.pyratok.prior import HierarchyPrior
from models.tokenizer.backbone import BackboneConfig, WanBackbone
from models.tokenizer.quantizer import TextContext

# the paper's code layout (one 16-bit sign stage per level) on the tiny backbone; the bundled tiny checkpoint uses
# 4 bits x 5 residual stages (test_residual_stage_tokens below)
TINY = {"base_dim": 8, "text_width": 384, "codebook_bits": 16, "residual_stages": 1}


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return WanBackbone.from_config(BackboneConfig(base_dim=8, num_res_blocks=1)).eval()


@pytest.mark.parametrize("frames,latent", [(9, 3), (13, 4), (1, 1)])
def test_taps_match_diffusers_and_latent_frames_are_causal(backbone, frames, latent):
    x = torch.rand(1, 3, frames, 32, 32) * 2 - 1
    with torch.no_grad():
        taps = backbone.encode_taps(x, ["stage0", "stage1", "stage2", "stage3", "mid", "latent"])
        ref = backbone.vae.encode(x).latent_dist.mode()
    assert torch.equal(taps["latent"], ref)  # the same modules in the same order: bit-identical
    assert taps["latent"].shape == (1, 16, latent, 4, 4)
    t2 = 1 + (frames - 1) // 2
    assert taps["stage0"].shape == (1, 8, frames, 16, 16)
    assert taps["stage1"].shape == (1, 16, t2, 8, 8)
    assert taps["stage2"].shape == taps["stage3"].shape == taps["mid"].shape == (1, 32, latent, 4, 4)
    with torch.no_grad():
        y = backbone.decode(taps["latent"])
        assert torch.equal(y, backbone.vae.decode(ref).sample)
    assert y.shape == (1, 3, frames, 32, 32)


def test_encoding_is_causal(backbone):
    """Later frames never change earlier latent frames (the chunked cache semantics)."""
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    y = x.clone()
    y[:, :, 5:] = torch.rand(1, 3, 4, 32, 32)
    with torch.no_grad():
        a = backbone.encode_taps(x, ["latent"])["latent"]
        b = backbone.encode_taps(y, ["latent"])["latent"]
    assert torch.equal(a[:, :, :2], b[:, :, :2]) and not torch.equal(a[:, :, 2], b[:, :, 2])


def test_pad_input_accepts_any_clip_size(backbone):
    x = torch.rand(1, 3, 7, 30, 20)
    assert backbone.pad_input(x).shape == (1, 3, 9, 32, 24)


@pytest.fixture(scope="module")
def adapter():
    from models.pyratok.adapter import PyraTokAdapter

    torch.manual_seed(0)
    return PyraTokAdapter(checkpoint="none", config="tiny", **TINY)


def test_adapter_tokens_bits_and_round_trip(adapter):
    x = torch.rand(2, 3, 9, 32, 48) * 2 - 1
    tokens = adapter.encode(x)
    names = [lv.name for lv in tokens.levels]
    assert names == ["l1", "l2", "l3", "l4"]
    shapes = [tuple(lv.bits.shape) for lv in tokens.levels]
    assert shapes == [(2, 9, 16, 24, 16), (2, 5, 8, 12, 16), (2, 3, 4, 6, 16), (2, 3, 4, 6, 16)]
    assert all(lv.bit_order == "msb" and lv.codebook_size == 2 ** 16 for lv in tokens.levels)
    # the decoder reads the last level only: 3 x 4 x 6 cells x 16 bits
    assert tokens.bits.tolist() == [3 * 4 * 6 * 16] * 2
    assert tokens.bits_per_pixel()[0].item() == pytest.approx(1152 / (9 * 32 * 48))
    y = adapter.decode(tokens)
    assert y.shape == x.shape and y.abs().max() <= 1
    # decoding reads the bits, nothing else: flipping a bit of the last level changes the output
    tokens.levels[-1].bits[0, 0, 0, 0, 0] ^= 1
    assert not torch.equal(adapter.decode(tokens), y)


def test_adapter_crops_padded_clips_and_reports_the_16_bit_budget(adapter):
    x = torch.rand(1, 3, 17, 40, 40) * 2 - 1
    tokens = adapter.encode(x)
    assert tokens.bits.item() == 5 * 5 * 5 * 16
    assert adapter.decode(tokens).shape == x.shape
    f = adapter.features(x, "last")
    assert f.shape == (1, 5, 5, 5, 16) and adapter.feature_stride("last") == (4, 8, 8)
    f0 = adapter.features(x, "first")
    assert f0.shape == (1, 17, 20, 20, 16) and adapter.feature_stride(0) == (1, 2, 2)
    assert adapter.features(x, 1).shape == (1, 9, 10, 10, 16) and adapter.feature_stride("l2") == (2, 4, 4)
    with pytest.raises(ValueError):
        adapter.features(x, 7)


def test_metadata_and_config(adapter):
    md = adapter.metadata
    assert md.compression == (4, 8, 8) and md.code_bits == 16 and md.family == "pyratok"
    assert adapter.num_parameters() > 0 and adapter.config()["checkpoint"] == "none"


def _toy_text(n, dim):
    tokens = torch.zeros(n, 2, dim)
    tokens[:, 0, 0] = torch.arange(n).float()
    return TextContext(tokens, torch.ones(n, 2, dtype=torch.bool), tokens.mean(1), torch.ones(n, dtype=torch.bool))


def test_ar_prior_learns_a_toy_hierarchy_and_samples_valid_codes():
    torch.manual_seed(0)
    prior = HierarchyPrior(bits=6, text_dim=4, levels=2, dim=32, layers=2, heads=2, window=64)
    # level 1: a fixed pattern; level 2: a copy of level 1's first frame pooled -- predictable from context
    g = torch.Generator().manual_seed(1)
    l1 = torch.where(torch.rand(2, 6, 3, 2, 2, generator=g) > 0.5, 1.0, -1.0)
    l2 = torch.where(l1[:, :, :1].mean((2, 3, 4), keepdim=True) >= 0, 1.0, -1.0).expand(2, 6, 1, 1, 1).contiguous()
    text = _toy_text(2, 4)
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    first = prior.loss(text, [l1, l2]).item()
    for _ in range(60):
        loss = prior.loss(text, [l1, l2])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first == pytest.approx(0.693, abs=0.1)  # ~log 2 per bit at initialisation
    assert loss.item() < 0.2 * first
    out = prior.sample(text, [(3, 2, 2), (1, 1, 1)], temperature=0.0)
    assert out[0].shape == (2, 6, 3, 2, 2) and out[1].shape == (2, 6, 1, 1, 1)
    assert torch.equal(out[0], l1) and torch.equal(out[1], l2)  # greedy decoding reproduces what it learned
    sampled = prior.sample(text, [(3, 2, 2), (1, 1, 1)], temperature=1.0, top_k=4,
                           generator=torch.Generator().manual_seed(0))
    assert set(sampled[0].unique().tolist()) <= {-1.0, 1.0}


def test_batched_sampling_equals_one_item_at_a_time_with_padded_prompts():
    """Each item's codes depend only on its own prompt and generator: not on the batch, nor on the padding that a
    longer prompt in the batch forces on a shorter one."""
    torch.manual_seed(0)
    prior = HierarchyPrior(bits=5, text_dim=4, levels=2, dim=16, layers=2, heads=2, window=12).eval()
    tokens = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, True], [True, False, False]])  # the second prompt has one real token
    tokens[1, 1:] = 99.0  # padding garbage that must never be attended to
    text = TextContext(tokens, mask, tokens.mean(1), torch.ones(2, dtype=torch.bool))
    shapes = [(3, 4, 4), (2, 2, 2)]  # level 1 has 48 tokens > window: sampled over its centred region only
    batched = prior.sample(text, shapes, generator=[torch.Generator().manual_seed(s) for s in (7, 8)])
    for i, seed in enumerate((7, 8)):
        real = mask[i]
        one = TextContext(tokens[i:i + 1, real], mask[i:i + 1, real], tokens[i:i + 1].mean(1), text.has_text[:1])
        alone = prior.sample(one, shapes, generator=torch.Generator().manual_seed(seed))
        for lv in range(2):
            assert torch.equal(batched[lv][i:i + 1], alone[lv])
    assert not torch.equal(batched[1][0], batched[1][1])  # different seeds and prompts give different codes
    assert int((batched[0] == 0).all(1).sum()) == 2 * (48 - 12)  # outside the window: not sampled
    with pytest.raises(ValueError, match="3 generators for a batch of 2"):
        prior.sample(text, shapes, generator=[torch.Generator()] * 3)


def test_ar_gradient_reaches_the_codes():
    torch.manual_seed(0)
    prior = HierarchyPrior(bits=4, text_dim=4, levels=2, dim=16, layers=1, heads=2, window=32)
    z = torch.randn(1, 4, 3, 2, 2, requires_grad=True)
    from models.tokenizer.binary import sign_ste

    prior.loss(_toy_text(1, 4), [sign_ste(z), sign_ste(z[:, :, :1, :1, :1])]).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_ar_windows_bound_the_sequence():
    prior = HierarchyPrior(bits=4, text_dim=4, levels=3, dim=16, layers=1, heads=2, window=20)
    wins = prior._windows([(9, 16, 16), (5, 8, 8), (3, 4, 4)], torch.Generator().manual_seed(0))
    assert all(0 < len(w) <= 20 for w in wins)
    assert all(len(set(w.tolist())) == len(w) for w in wins)


def test_sampling_covers_the_decoded_level_in_full_and_earlier_levels_over_one_fixed_window():
    torch.manual_seed(0)
    prior = HierarchyPrior(bits=4, text_dim=4, levels=3, dim=16, layers=1, heads=2, window=8)
    shapes = [(2, 4, 4), (1, 2, 2), (1, 2, 2)]  # level 1 has 32 tokens > window 8
    out = prior.sample(_toy_text(1, 4), shapes, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert set(out[-1].unique().tolist()) <= {-1.0, 1.0}  # the decoded level: every cell sampled
    sampled = (out[0] != 0).all(1)[0]  # (t, h, w) cells of level 1 that were sampled
    assert 1 <= int(sampled.sum()) <= 8 and torch.equal((out[0] != 0).any(1), (out[0] != 0).all(1))
    again = prior.sample(_toy_text(1, 4), shapes, temperature=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal((again[0] != 0).all(1)[0], sampled)  # the region is fixed (centred), not drawn per call


def test_residual_stage_tokens():
    """The bundled layout: 4 bits x 5 residual stages per token; each stage is a code level of its own, the bit
    count is the last level's 20 bits per cell, and the decoder reads every stage of it."""
    from models.pyratok.adapter import PyraTokAdapter

    torch.manual_seed(0)
    a = PyraTokAdapter(checkpoint="none", config="tiny", base_dim=8, text_width=384)
    assert (a.model.cfg.codebook_bits, a.model.cfg.residual_stages) == (4, 5) and a.metadata.code_bits == 20
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    tokens = a.encode(x)
    assert [lv.name for lv in tokens.levels[-5:]] == [f"l4.s{i}" for i in range(5)]
    assert all(lv.codebook_size == 2 ** 4 for lv in tokens.levels)
    assert tokens.bits.item() == 3 * 4 * 4 * 20
    y = a.decode(tokens)
    tokens.levels[-1].bits[0, 0, 0, 0, 0] ^= 1  # the finest stage of the last level still changes the output
    assert not torch.equal(a.decode(tokens), y)
