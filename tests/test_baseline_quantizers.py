"""The learned baselines' quantizers on hand-made inputs: bit orders and index round trips (LFQ LSB-first, BSQ
MSB-first), straight-through gradients, entropy values (uniform vs collapsed, factorized vs the full 2^k softmax),
EMA updates and dead-code restarts, FSQ bounds and index bijection, RVQ error decreasing with stages, exact bits."""
import itertools
import math

import pytest
import torch

from models.base import CodeLevel
from models.baselines.tokenizers.bsq import BSQ, bsq_entropy
from models.baselines.tokenizers.codebook import Codebook, kmeans, nearest
from models.baselines.tokenizers.fsq import FSQ
from models.baselines.tokenizers.lfq import LFQ, all_codes, lfq_entropy, lfq_entropy_reference
from models.baselines.tokenizers.vq import RVQ, VQ
from models.tokenizer.binary import bits_to_indices


def grid(z_cells: torch.Tensor) -> torch.Tensor:
    """(N, k) -> (1, k, 1, 1, N): a code grid of N cells."""
    return z_cells.T.reshape(1, z_cells.shape[1], 1, 1, -1)


# -- LFQ ---------------------------------------------------------------------------------------------------------
def test_lfq_bits_are_lsb_first_and_round_trip():
    q = LFQ(4, bits=4).eval()
    z = torch.tensor([[0.5, -1.0, -0.2, 0.0],  # bits 1,0,0,0 (0 -> -1, as the reference's z > 0)
                      [-0.1, 0.3, 0.0, 2.0]])  # bits 0,1,0,1
    out = q.quantize_z(grid(z))
    level = out.levels[0].code_levels()[0]
    assert level.bit_order == "lsb" and level.codebook_size == 16
    assert level.as_indices().reshape(-1).tolist() == [1, 2 + 8]
    assert torch.equal(q.dequantize([level]), out.quantized)  # the decoder input from the bits alone
    # every index: bits -> index -> codebook row of the same index (all_codes is LSB-first too)
    idx = torch.arange(16)
    bits = ((idx.unsqueeze(-1) >> torch.arange(4)) & 1).to(torch.uint8)
    assert torch.equal(bits_to_indices(bits, "lsb"), idx)
    assert torch.equal((all_codes(4) > 0).to(torch.uint8), bits)


def test_lfq_straight_through_gradient_is_identity():
    q = LFQ(3, bits=3).eval()
    z = torch.randn(1, 3, 2, 2, 2, requires_grad=True)
    out = q.quantize_z(z)
    assert set(out.quantized.detach().unique().tolist()) <= {-1.0, 1.0}
    g = torch.randn_like(z)
    (out.quantized * g).sum().backward()
    assert torch.equal(z.grad, g)


def test_lfq_entropy_on_collapsed_uniform_and_undecided_codes():
    k = 6
    codes = all_codes(k)
    # every code once, confidently: deterministic tokens (H ~ 0) spread over the whole codebook (H = k ln 2)
    sample, codebook = lfq_entropy(codes, 100.0)
    assert sample.item() == pytest.approx(0.0, abs=1e-6)
    assert codebook.item() == pytest.approx(k * math.log(2), abs=1e-3)
    # collapsed: every token the same code -> both entropies 0, loss 0
    sample, codebook = lfq_entropy(codes[:1].repeat(64, 1), 100.0)
    assert sample.item() == pytest.approx(0.0, abs=1e-6) and codebook.item() == pytest.approx(0.0, abs=1e-4)
    # undecided (z = 0): uniform over the codebook for every token: both k ln 2, loss 0
    sample, codebook = lfq_entropy(torch.zeros(10, k), 100.0)
    assert sample.item() == pytest.approx(k * math.log(2), abs=1e-5)
    assert codebook.item() == pytest.approx(k * math.log(2), abs=1e-3)


@pytest.mark.parametrize("k,inv_t", [(5, 100.0), (8, 1.0), (11, 3.0)])
def test_lfq_factorized_entropy_equals_the_full_softmax(k, inv_t):
    torch.manual_seed(k)
    z = (torch.randn(300, k) * 0.3).requires_grad_(True)
    s_ref, c_ref = lfq_entropy_reference(z, inv_t)
    s, c = lfq_entropy(z, inv_t, chunk_elements=2 ** 12)  # several token chunks
    assert s.item() == pytest.approx(s_ref.item(), rel=1e-4, abs=1e-5)
    assert c.item() == pytest.approx(c_ref.item(), rel=1e-4, abs=1e-5)
    g_ref = torch.autograd.grad(s_ref - c_ref, z)[0]
    g = torch.autograd.grad(s - c, z)[0]
    assert torch.allclose(g, g_ref, atol=1e-5, rtol=1e-3)


def test_lfq_entropy_against_an_independent_per_code_computation():
    """p(c|z) = softmax_c(2 <z, c> * 100) written out code by code with Python floats."""
    z = torch.tensor([[0.01, -0.004], [0.002, 0.003], [-0.02, 0.0]])
    codes = list(itertools.product([-1.0, 1.0], repeat=2))
    probs = []
    for row in z.tolist():
        logits = [200 * sum(a * b for a, b in zip(row, c)) for c in codes]
        m = max(logits)
        e = [math.exp(v - m) for v in logits]
        probs.append([v / sum(e) for v in e])
    sample = sum(-sum(p * math.log(p) for p in ps if p > 0) for ps in probs) / len(probs)
    avg = [sum(ps[i] for ps in probs) / len(probs) for i in range(4)]
    codebook = -sum(p * math.log(p + 1e-5) for p in avg)
    s, c = lfq_entropy(z, 100.0)
    assert s.item() == pytest.approx(sample, rel=1e-5) and c.item() == pytest.approx(codebook, rel=1e-5)


def test_lfq_training_losses():
    q = LFQ(2, bits=2).train()
    out = q.quantize_z(grid(torch.tensor([[0.5, -0.5], [-0.5, 0.5]])))
    assert out.losses["commitment"].item() == pytest.approx(0.25)  # (0.5 - 1)^2
    assert out.losses["entropy"].item() == pytest.approx(-math.log(2), abs=1e-3)  # two codes, half each


# -- BSQ ---------------------------------------------------------------------------------------------------------
def test_bsq_unit_sphere_msb_first_and_round_trip():
    q = BSQ(4, bits=4, group_size=2).eval()
    z = torch.tensor([[3.0, -1.0, -2.0, 0.5], [-0.1, 0.2, 0.3, -4.0]])
    out = q.quantize_z(grid(z))
    assert torch.allclose(out.quantized.abs(), torch.full_like(out.quantized, 0.5))  # sign / sqrt(4)
    level = out.levels[0].code_levels()[0]
    assert level.bit_order == "msb"
    assert level.as_indices().reshape(-1).tolist() == [0b1001, 0b0110]
    assert torch.equal(q.dequantize([level]), out.quantized)


def test_bsq_straight_through_reaches_the_unnormalized_input():
    q = BSQ(4, bits=4, group_size=2).eval()
    z = torch.randn(1, 4, 1, 2, 2, requires_grad=True)
    out = q.quantize_z(z)
    out.quantized.sum().backward()
    u = torch.nn.functional.normalize(z.detach(), dim=1)
    # d/dz of sum(u) / 2 with u = z / |z|: (1 - u * sum(u)) / (2 |z|)
    expect = (1 - u * u.sum(1, keepdim=True)) / (2 * z.detach().norm(dim=1, keepdim=True))
    assert torch.allclose(z.grad, expect, atol=1e-6)


def test_bsq_grouped_entropy_values_and_analytical_option():
    k, g = 4, 2
    codes = all_codes(k) / 2  # unit vectors: every code once
    # confident (inverse temperature 50): per-sample 0; each group's average is uniform over 4 sub-codes
    s, c = bsq_entropy(codes, g, 50.0)
    assert s.item() == pytest.approx(0.0, abs=1e-5) and c.item() == pytest.approx(2 * math.log(4), abs=1e-5)
    s2, _ = bsq_entropy(codes, g, 50.0, persample="analytical")
    assert s2.item() == pytest.approx(0.0, abs=1e-5)
    collapsed = codes[:1].repeat(8, 1)
    s, c = bsq_entropy(collapsed, g, 50.0)
    assert c.item() == pytest.approx(0.0, abs=1e-4)
    torch.manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(50, 8), dim=-1)
    sg, cg = bsq_entropy(u, 4, 2.0, "group")
    sa, ca = bsq_entropy(u, 4, 2.0, "analytical")
    assert sg.item() == pytest.approx(sa.item(), rel=1e-5) and cg.item() == ca.item()  # the softmax factorizes


# -- VQ ------------------------------------------------------------------------------------------------------------
def test_nearest_chunked_matches_brute_force(monkeypatch):
    import models.baselines.tokenizers.codebook as cbm

    torch.manual_seed(0)
    x, codes = torch.randn(200, 5), torch.randn(300, 5)
    brute = torch.cdist(x, codes).argmin(-1)
    monkeypatch.setattr(cbm, "CHUNK_ELEMENTS", 1000)  # 3 rows per chunk
    assert torch.equal(nearest(x, codes), brute)
    cos = (torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(codes, dim=-1).T).argmax(-1)
    assert torch.equal(nearest(x, codes, cosine=True), cos)


def test_ema_update_moves_used_codes_to_the_batch_mean():
    cb = Codebook(4, 2, update="ema", decay=0.9, eps=0.0, dead_after=0).train()
    cb.set_codes(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [9.0, 1.0]])  # two tokens to code 0 (mean (1, 0)), one to code 1
    q, idx, losses = cb(x)
    assert idx.tolist() == [0, 0, 1]
    counts = torch.tensor([0.9 + 0.2, 0.9 + 0.1, 0.9, 0.9])
    sums = torch.tensor([[0.0 + 0.1 * 2, 0.0], [9.0 + 0.9, 0.1], [0.0, 9.0], [9.0, 9.0]])
    assert torch.allclose(cb.ema_count, counts) and torch.allclose(cb.ema_sum, sums)
    assert torch.allclose(cb.embed, sums / counts.unsqueeze(-1))  # eps = 0: no smoothing
    assert losses["codebook"].item() == 0.0
    assert losses["commitment"].item() == pytest.approx(((x - q) ** 2).mean().item())


def test_laplace_smoothing_keeps_the_total_count():
    cb = Codebook(8, 2, update="ema", decay=0.5, eps=1e-2, dead_after=0).train()
    cb(torch.randn(16, 2))
    n = cb.ema_count.sum()
    smoothed = (cb.ema_count + 1e-2) / (n + 8e-2) * n
    assert torch.allclose(cb.embed, cb.ema_sum / smoothed.unsqueeze(-1))
    assert smoothed.sum().item() == pytest.approx(n.item(), rel=1e-6)


def test_dead_codes_are_restarted_from_batch_features_after_n_idle_steps():
    torch.manual_seed(0)
    cb = Codebook(4, 2, update="ema", dead_after=3).train()
    cb.set_codes(torch.tensor([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0], [300.0, 300.0]]))
    x = torch.randn(5, 2) * 0.1  # always code 0
    for step in range(2):
        _, _, losses = cb(x)
        assert losses["restarted"].item() == 0 and cb.idle.tolist() == [0, step + 1, step + 1, step + 1]
    _, _, losses = cb(x)  # third idle step: codes 1-3 are dead
    assert losses["restarted"].item() == 3 and cb.idle.tolist() == [0, 0, 0, 0]
    restarted = cb.embed[1:]
    assert all(any(torch.equal(r, xi) for xi in x) for r in restarted)  # each is a batch feature
    assert len({tuple(r.tolist()) for r in restarted}) == 3  # drawn without replacement
    assert torch.equal(cb.ema_sum[1:], restarted) and cb.ema_count[1:].tolist() == [1.0, 1.0, 1.0]
    # more dead codes than batch features: the longest idle are restarted first
    torch.manual_seed(1)
    cb = Codebook(6, 2, update="ema", dead_after=2).train()
    cb.idle.copy_(torch.tensor([0, 5, 1, 9, 7, 1]))
    _, _, losses = cb(torch.randn(2, 2) * 0.01 + cb.embed[0])
    assert losses["restarted"].item() == 2 and cb.idle[[3, 4]].tolist() == [0, 0] and cb.idle[1].item() == 6


def test_loss_updated_codebook_trains_by_its_term_and_cosine_lookup_is_normalized():
    cb = Codebook(3, 2, update="loss", distance="cosine", dead_after=0).train()
    x = torch.tensor([[3.0, 4.0]])
    q, idx, losses = cb(x)
    assert torch.allclose(q.norm(dim=-1), torch.ones(1))
    losses["codebook"].backward()
    assert cb.embed.grad is not None and cb.embed.grad[idx].abs().sum() > 0


def test_vq_indices_round_trip_straight_through_and_bits():
    torch.manual_seed(0)
    q = VQ(3, codebook_size=16, codebook_dim=3, dead_after=0).eval()
    z = torch.randn(2, 3, 2, 3, 3, requires_grad=True)
    out = q.quantize_z(z)
    lv = out.levels[0]
    assert lv.bits_per_cell == 4 and lv.cells == 18
    levels = lv.code_levels()
    assert len(levels) == 1 and levels[0].codebook_size == 16 and levels[0].indices.shape == (2, 2, 3, 3)
    with torch.no_grad():  # as the adapter encodes: the decoder input is exactly what the codes rebuild
        assert torch.equal(q.dequantize(levels), q.quantize_z(z).quantized)
    assert torch.allclose(q.dequantize(levels), out.quantized, atol=1e-6)
    brute = torch.cdist(z.detach().movedim(1, -1).reshape(-1, 3), q.codebooks[0].embed).argmin(-1)
    assert torch.equal(levels[0].indices.reshape(-1), brute)
    g = torch.randn_like(z)
    (out.quantized * g).sum().backward()
    assert torch.equal(z.grad, g)


def test_vq_rejects_a_codebook_that_is_not_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        VQ(3, codebook_size=1000)


def test_rvq_error_decreases_with_stages_and_bits_add_up():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 1, 16, 16)
    errors = []
    for stages in (1, 2, 3):
        q = RVQ(4, codebook_size=16, codebook_dim=4, stages=stages, dead_after=0).eval()
        torch.nn.init.eye_(q.project_in.weight.view(4, 4))
        torch.nn.init.zeros_(q.project_in.bias)
        q.structured_init(x, generator=torch.Generator().manual_seed(0))  # k-means per stage on the residuals
        with torch.no_grad():
            q.project_in.weight.view(4, 4).copy_(torch.eye(4))
            q.project_in.bias.zero_()
        out = q.quantize_z(x)
        assert out.levels[0].bits_per_cell == 4 * stages
        levels = out.levels[0].code_levels()
        assert [lv.name for lv in levels] == [f"latent.s{i}" for i in range(stages)] if stages > 1 else ["latent"]
        assert torch.allclose(q.dequantize(levels), out.quantized)
        errors.append(((out.quantized - x) ** 2).mean().item())
    assert errors[0] > errors[1] > errors[2]


def test_kmeans_finds_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = (centres.repeat_interleave(30, 0) + torch.randn(90, 2, generator=g) * 0.1)
    found = kmeans(x, 3, iters=10, generator=g)
    assert torch.cdist(centres, found).min(-1).values.max() < 0.2


# -- FSQ -----------------------------------------------------------------------------------------------------------
def test_fsq_levels_bounds_and_index_bijection():
    q = FSQ(6, levels=[8, 8, 8, 5, 5, 5]).eval()
    assert q.codebook_size == 64000
    z = torch.linspace(-20, 20, 4001).reshape(1, 1, 1, 1, -1).expand(1, 6, 1, 1, -1).contiguous()
    out = q.quantize_z(z)
    vals = out.quantized
    for i, n in enumerate([8, 8, 8, 5, 5, 5]):
        levels = sorted(set(vals[0, i].reshape(-1).tolist()))
        half = n // 2
        assert len(levels) == n and levels[0] == -1.0 and levels[-1] == pytest.approx((n - 1 - half) / half)
    idx = torch.arange(64000)
    codes = q.indices_to_codes(idx)
    assert torch.equal(q.codes_to_indices(codes), idx)  # a bijection on [0, 64000)
    assert len({tuple(c) for c in codes.tolist()}) == 64000
    assert codes.min() >= -1 and codes.max() <= 1
    # mixed radix, channel 0 least significant
    assert q.indices_to_codes(torch.tensor([1]))[0, 0].item() == pytest.approx(-0.75)
    assert q.indices_to_codes(torch.tensor([8]))[0, 1].item() == pytest.approx(-0.75)
    lv = out.levels[0]
    assert lv.bits_per_cell == 16 and torch.equal(q.dequantize(lv.code_levels()), vals)


def test_fsq_bound_matches_the_paper_formula_and_gradient_is_straight_through():
    q = FSQ(2, levels=[8, 5]).eval()
    z = torch.tensor([[0.3, -0.7]])
    half_l = torch.tensor([7 * 0.999 / 2, 4 * 0.999 / 2])
    offset = torch.tensor([0.5, 0.0])
    expect = torch.tanh(z + torch.tan(offset / half_l)) * half_l - offset
    assert torch.allclose(q.bound(z), expect)
    zz = torch.randn(1, 2, 1, 2, 2, requires_grad=True)
    out = q.quantize_z(zz)
    out.quantized.sum().backward()
    bz = zz.detach().movedim(1, -1)
    dbound = (1 - torch.tanh(bz + torch.tan(offset / half_l)) ** 2) * half_l / torch.tensor([4.0, 2.0])
    assert torch.allclose(zz.grad, dbound.movedim(-1, 1), atol=1e-6)


def test_code_level_bits_for_index_codebooks():
    lv = CodeLevel("x", indices=torch.zeros(1, 2, 2, 2, dtype=torch.long), codebook_size=64000)
    assert lv.code_bits == 16 and lv.num_codes == 8
