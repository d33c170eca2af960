"""LaPQ's binary quantization: straight-through gradients, MSB-first bits, the per-bit entropy and commitment losses
on inputs with known answers, residual stages, the shared codebook across levels, and text conditioning."""
import itertools
import math

import pytest
import torch

from models.base import CodeLevel
from models.pyratok.lapq import LaPQ, parse_align_levels, taps_for_levels
from models.pyratok.losses import hierarchical_kl
from models.tokenizer.binary import (bernoulli_kl, bits_to_indices, commitment_loss, dequantize_stages,
                                     factorized_entropy_loss, from_bits, indices_to_bits, residual_sign_quantize,
                                     sign_ste, to_bits)
from models.tokenizer.quantizer import TextContext, causal_pool


def test_sign_forward_values_and_identity_gradient():
    z = torch.tensor([-2.0, -1e-4, 0.0, 3e-5, 5.0], requires_grad=True)
    q = sign_ste(z)
    assert q.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]  # z >= 0 -> +1, as LaPQ.py
    (q * torch.arange(5.0)).sum().backward()
    assert z.grad.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_bits_are_msb_first_and_indices_round_trip():
    q = torch.tensor([1.0, -1.0, -1.0, 1.0]).view(1, 4, 1, 1, 1)  # (B, k, t, h, w)
    bits = to_bits(q)
    assert bits.shape == (1, 1, 1, 1, 4) and bits.flatten().tolist() == [1, 0, 0, 1]
    assert bits_to_indices(bits).item() == 0b1001 == 9
    assert bits_to_indices(bits, "lsb").item() == 1 + 8  # symmetric pattern: both orders agree here
    assert bits_to_indices(to_bits(torch.tensor([1.0, 1, -1, -1]).view(1, 4, 1, 1, 1))).item() == 12
    assert bits_to_indices(to_bits(torch.tensor([1.0, 1, -1, -1]).view(1, 4, 1, 1, 1)), "lsb").item() == 3
    idx = torch.arange(2 ** 10)
    assert torch.equal(bits_to_indices(indices_to_bits(idx, 10)), idx)
    assert torch.equal(bits_to_indices(indices_to_bits(idx, 10, "lsb"), "lsb"), idx)
    level = CodeLevel("l4", bits=indices_to_bits(idx.view(1, 1, 32, 32), 10), bit_order="msb")
    assert torch.equal(level.as_indices().flatten(), idx)
    assert torch.equal(from_bits(bits), q)


def _exact_token_entropy(z: torch.Tensor, inv_t: float) -> torch.Tensor:
    """Entropy of softmax over all 2^k codes of <z, c> * inv_t (brute force), mean over tokens."""
    k = z.shape[1]
    codes = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=k)))
    p = torch.softmax(inv_t * z @ codes.t(), -1)
    return -(p * p.clamp_min(1e-30).log()).sum(-1).mean()


def test_entropy_loss_known_values():
    k = 6
    # every token confident and every bit used half the time -> 0
    zs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=k)))  # (64, k): all codes once
    assert factorized_entropy_loss(zs.view(64, k, 1, 1, 1)).item() == pytest.approx(0.0, abs=1e-4)
    # every token confident on the same code -> codebook entropy 0, loss = log K
    same = torch.ones(10, k, 1, 1, 1)
    assert factorized_entropy_loss(same).item() == pytest.approx(k * math.log(2), abs=1e-4)
    # z = 0: every token uniform -> per-token entropy log K, codebook entropy log K -> loss log K
    assert factorized_entropy_loss(torch.zeros(4, k, 1, 1, 1)).item() == pytest.approx(k * math.log(2), abs=1e-4)


def test_per_token_entropy_factorizes_exactly():
    torch.manual_seed(0)
    z = torch.randn(50, 3) * 0.01
    inv_t = 100.0
    p = torch.sigmoid(2 * inv_t * z)
    per_bit = -(p * p.log() + (1 - p) * (1 - p).log()).sum(-1).mean()
    assert per_bit.item() == pytest.approx(_exact_token_entropy(z, inv_t).item(), rel=1e-4)


def test_bernoulli_kl_is_the_exact_codebook_kl_per_bit():
    torch.manual_seed(1)
    k = 3
    a, b = torch.randn(1, k), torch.randn(1, k)
    codes = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=k)))
    pa, pb = torch.softmax(a @ codes.t(), -1), torch.softmax(b @ codes.t(), -1)
    exact = (pa * (pa.log() - pb.log())).sum()
    assert bernoulli_kl(2 * a, 2 * b).item() == pytest.approx(exact.item() / k, rel=1e-4)
    assert bernoulli_kl(a, a).item() == pytest.approx(0.0, abs=1e-7)


def test_commitment_loss_known_value_and_no_gradient_to_codes():
    z = torch.tensor([0.5, -2.0], requires_grad=True)
    q = torch.tensor([1.0, -1.0], requires_grad=True)
    loss = commitment_loss(z, q)
    assert loss.item() == pytest.approx((0.25 + 1.0) / 2)
    loss.backward()
    assert q.grad is None and z.grad.tolist() == pytest.approx([-0.5, -1.0])


def test_residual_stages_are_scaled_by_powers_of_two():
    z = torch.tensor([0.3, -0.9, 1.7]).view(1, 3, 1, 1, 1)
    total, codes, _ = residual_sign_quantize(z, 3)
    # 0.3: +1, residual -0.7 -> -0.5, residual -0.2 -> -0.25: 0.25
    # -0.9: -1, residual 0.1 -> +0.5, residual -0.4 -> -0.25: -0.75
    # 1.7: +1, residual 0.7 -> +0.5, residual 0.2 -> +0.25: 1.75
    assert total.flatten().tolist() == pytest.approx([0.25, -0.75, 1.75])
    assert [c.flatten().tolist() for c in codes] == [[1, -1, 1], [-1, 1, 1], [-1, -1, 1]]
    assert torch.equal(dequantize_stages(codes), total.detach())
    one, codes1, commit = residual_sign_quantize(z, 1)
    assert one.flatten().tolist() == [1.0, -1.0, 1.0] and len(codes1) == 1
    assert commit.item() == pytest.approx(((0.7 ** 2) + 0.1 ** 2 + 0.7 ** 2) / 3)


def test_causal_pool_keeps_frame_zero_alone():
    x = torch.arange(9.0).view(1, 1, 9, 1, 1).expand(1, 1, 9, 2, 2)
    y = causal_pool(x, (5, 1, 1))
    assert y.flatten().tolist() == [0.0, 1.5, 3.5, 5.5, 7.5]
    assert causal_pool(x, (3, 2, 2))[0, 0, :, 0, 0].tolist() == [0.0, 2.5, 6.5]


def _features(b=2, t=9, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    chans = {"stage0": 8, "stage1": 16, "stage2": 32, "stage3": 32, "mid": 32, "latent": 16}
    strides = {"stage0": (1, 2, 2), "stage1": (2, 4, 4), "stage2": (4, 8, 8), "stage3": (4, 8, 8),
               "mid": (4, 8, 8), "latent": (4, 8, 8)}
    feats = {}
    for k, (st, sh, sw) in strides.items():
        tt = 1 + (t - 1) // st if st > 1 else t
        feats[k] = torch.randn(b, chans[k], tt, h // sh, w // sw, generator=g)
    return chans, strides, feats


def _text(b, dim, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, 5, dim, generator=g)
    return TextContext(tokens, torch.ones(b, 5, dtype=torch.bool), tokens.mean(1), torch.ones(b, dtype=torch.bool))


def test_levels_share_one_binary_codebook_and_the_decoder_reads_the_last():
    chans, strides, feats = _features()
    torch.manual_seed(0)
    lapq = LaPQ(chans, strides, levels=4, bits=12, residual_stages=2, dim=16, heads=2, text_dim=8)
    assert lapq.taps == ("stage0", "stage1", "stage2", "latent")
    out = lapq([feats[t] for t in lapq.taps], None)
    assert len(out.levels) == 4
    for lv in out.levels:
        assert lv.z.shape[1] == 12 and len(lv.stage_codes) == 2
        for c in lv.stage_codes:
            assert set(c.unique().tolist()) <= {-1.0, 1.0}
        # every level's codes index the same codebook: bits rebuild its value through the same dequantization
        rebuilt = lapq.dequantize([cl for cl in lv.code_levels()])
        assert torch.equal(rebuilt, lv.value.detach())
    assert out.quantized is out.levels[-1].value
    assert [lv.stride for lv in out.levels] == [(1, 2, 2), (2, 4, 4), (4, 8, 8), (4, 8, 8)]
    assert [tuple(lv.z.shape[2:]) for lv in out.levels] == [(9, 8, 8), (5, 4, 4), (3, 2, 2), (3, 2, 2)]
    assert out.levels[0].bits_per_cell == 24
    # the hierarchical KL vanishes when a level agrees with the pooled previous level
    assert hierarchical_kl(out.levels[:1] * 2, 1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_text_changes_the_codes_and_align_none_removes_it():
    chans, strides, feats = _features(seed=3)
    torch.manual_seed(0)
    lapq = LaPQ(chans, strides, levels=2, bits=16, dim=16, heads=2, text_dim=8, align_levels="all")
    inputs = [feats[t] for t in lapq.taps]
    a, b = lapq(inputs, _text(2, 8, 1)), lapq(inputs, _text(2, 8, 2))
    for la, lb in zip(a.levels, b.levels):
        assert not torch.allclose(la.z, lb.z)
        assert (la.stage_codes[0] != lb.stage_codes[0]).float().mean() > 0.01
    torch.manual_seed(0)
    none = LaPQ(chans, strides, levels=2, bits=16, dim=16, heads=2, text_dim=8, align_levels="none")
    c, d = none(inputs, _text(2, 8, 1)), none(inputs, _text(2, 8, 2))
    for lc, ld in zip(c.levels, d.levels):
        assert torch.equal(lc.z, ld.z)
    assert not any(hasattr(blk, "attn") for blk in none.blocks)
    last = LaPQ(chans, strides, levels=3, bits=16, dim=16, heads=2, text_dim=8, align_levels="last")
    assert [hasattr(blk, "attn") for blk in last.blocks] == [False, False, True]


def test_knobs_parse():
    assert taps_for_levels(1) == ("latent",) and taps_for_levels(2) == ("stage2", "latent")
    assert taps_for_levels(5) == ("stage0", "stage1", "stage2", "stage3", "latent")
    assert parse_align_levels("none", 4) == () and parse_align_levels("last", 4) == (3,)
    assert parse_align_levels("all", 3) == (0, 1, 2) and parse_align_levels([1, 3], 4) == (0, 2)
    assert parse_align_levels("2,4", 4) == (1, 3)
    with pytest.raises(ValueError):
        parse_align_levels([5], 4)


def test_straight_through_gradient_reaches_every_level():
    chans, strides, feats = _features(b=1)
    torch.manual_seed(0)
    lapq = LaPQ(chans, strides, levels=4, bits=8, dim=16, heads=2, text_dim=8)
    inputs = [feats[t].requires_grad_(True) for t in lapq.taps]
    out = lapq(inputs, None)
    out.quantized.sum().backward()  # the decoder reads the last level, which reads all earlier ones
    for x in inputs:
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_successive_bits_init_codes_colours_to_the_stage_resolution():
    """`init_successive_bits` turns each principal direction of the inputs into 2^S-level successive-approximation
    codes: a linear read-out from the quantized values recovers inputs to well within one cell of the 4 bit
    channels x 5 stages, where a single sign stage would not."""
    import torch.nn as nn

    from models.tokenizer.structured_init import init_successive_bits

    g = torch.Generator().manual_seed(0)
    colours = torch.rand(4000, 3, generator=g) * torch.tensor([1.6, 0.5, 0.3]) - torch.tensor([0.8, 0.25, 0.15])
    mix = torch.linalg.qr(torch.randn(8, 8, generator=g))[0][:3]  # colours embedded in an 8-d input space
    inputs = colours @ mix + 0.3
    to_bits = nn.Linear(8, 4)
    init_successive_bits(to_bits, inputs, stages=5)
    with torch.no_grad():
        z = to_bits(inputs)
    assert z.amin() > -2 and z.amax() < 2  # the calibration range sits inside the stages' range [-2, 2]
    value, codes, _ = residual_sign_quantize(z, 5)
    assert len(codes) == 5
    a = torch.cat([value, torch.ones(len(value), 1)], 1)
    fit = torch.linalg.lstsq(a, colours).solution
    err = (a @ fit - colours).abs().amax(0)
    # the widest direction (span 1.6, widened by half) has two staggered channels of 32 cells: < 1/64 of 2.4
    assert err[0] < 2.4 / 64 and err[1] < 0.75 / 32 and err[2] < 0.45 / 32
    one, _, _ = residual_sign_quantize(z, 1)
    b = torch.cat([one, torch.ones(len(one), 1)], 1)
    assert ((b @ torch.linalg.lstsq(b, colours).solution - colours).abs().amax(0) > 4 * err).all()
