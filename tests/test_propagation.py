"""Label propagation (DINO and CRW settings) on toy affinities computed by hand, and against a dense brute force."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tasks.davis_vos import first_step_labels, target_size
from tasks.zeroshot.propagation import (VARIANTS, PropagationParams, context_steps, labels_to_pixels, norm_mask,
                                        propagate, propagate_step, window_mask)

E = math.e


def _one_hot(ids, c=2):
    return F.one_hot(torch.tensor(ids), c).float()


def test_dino_keeps_top_k_with_ties_inside_a_square_window():
    # a 1x3 grid; step 0 labels A, B, A; DINO weighting with T = 1, k = 2, window |dj| <= 1
    params = PropagationParams(topk=2, temperature=1.0, context=7, radius=1, window="square", window_on_first=True,
                               weights="exp-threshold", prepend_first=False)
    source = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    soft = propagate_step(target, source[None], _one_hot([0, 1, 0])[None], [True], 1, 3, params)
    a = soft[:, 0]
    # cell 0: affinities 1, 0 in the window (cell 2 is 2 cells away): weights e, 1
    assert a[0].item() == pytest.approx(E / (E + 1), rel=1e-6)
    # cell 1: affinities 0.6, 0.8, 0.6; the 2nd largest (e^0.6) is tied, and DINO keeps every value >= it
    assert a[1].item() == pytest.approx(2 * E ** 0.6 / (2 * E ** 0.6 + E ** 0.8), rel=1e-6)
    # cell 2: cell 0 is outside the window; weights e (B) and 1 (A)
    assert a[2].item() == pytest.approx(1 / (1 + E), rel=1e-6)
    assert torch.allclose(soft.sum(1), torch.ones(3))


def test_dino_temperature_sharpens_the_weights():
    source = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    target = torch.tensor([[0.8, 0.6], [0.8, 0.6]])
    for t in (1.0, 0.1):
        params = PropagationParams(5, t, 7, 12, "square", True, "exp-threshold", False)
        a = propagate_step(target, source[None], _one_hot([0, 1])[None], [True], 1, 2, params)[0, 0]
        assert a.item() == pytest.approx(math.exp(0.8 / t) / (math.exp(0.8 / t) + math.exp(0.6 / t)), rel=1e-6)


def test_crw_softmaxes_the_top_k_and_leaves_the_long_memory_unrestricted():
    # CRW: step 0 is both the long memory (no window) and the padded short context (disk of radius 1.5)
    params = PropagationParams(topk=3, temperature=1.0, context=1, radius=1.5, window="disk", window_on_first=False,
                               weights="softmax", prepend_first=True)
    step0 = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])  # labels A, A, B
    target = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    ctx = context_steps(1, params)
    assert ctx == [(0, False), (0, True)]
    soft = propagate_step(target, torch.stack([step0, step0]), torch.stack([_one_hot([0, 0, 1])] * 2),
                          [r for _, r in ctx], 1, 3, params)
    # cell 0: long memory 0, .6, 1 (cell 2 reachable), short 0, .6 (cell 2 masked): top 3 = 1 (B), .6 (A), .6 (A)
    assert soft[0, 1].item() == pytest.approx(E / (E + 2 * E ** 0.6), rel=1e-6)
    # cell 2: long 0, .6, 1; short .6, 1: top 3 = 1 (B), 1 (B), .6 (A)
    assert soft[2, 0].item() == pytest.approx(E ** 0.6 / (2 * E + E ** 0.6), rel=1e-6)


def test_context_follows_each_reference():
    dino, crw = VARIANTS["dino"], VARIANTS["crw"]
    assert context_steps(1, dino) == [(0, True)]
    assert context_steps(9, dino) == [(0, True)] + [(s, True) for s in range(2, 9)]
    assert context_steps(1, crw) == [(0, False)] + [(0, True)] * 20  # 20 prepended copies of step 0
    assert context_steps(25, crw) == [(0, False)] + [(s, True) for s in range(5, 25)]
    assert (dino.topk, dino.temperature, dino.context, dino.radius) == (5, 0.1, 7, 12)
    assert (crw.topk, crw.temperature, crw.context, crw.radius) == (10, 0.05, 20, 12)


def test_window_shapes():
    assert window_mask(2, "square").all() and window_mask(2, "square").shape == (5, 5)
    disk = window_mask(2, "disk")  # distance < 2: not the corners, not (0, ±2)
    assert disk.sum() == 9 and not disk[0, 2] and disk[1, 1] and disk[2, 2]
    with pytest.raises(ValueError):
        window_mask(2, "hexagon")


def _dense_reference(target, sources, labels, restricted, h, w, p):
    """The references' dense formulation: every source of every context step, masked, then top-k."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([yy.reshape(-1), xx.reshape(-1)], 1).float()
    d = pos[:, None, :] - pos[None, :, :]
    inside = (d.abs().max(-1).values <= p.radius) if p.window == "square" else (d.norm(dim=-1) < p.radius)
    aff = torch.cat([target @ s.T for s in sources], 1)
    allowed = torch.cat([inside if r else torch.ones_like(inside) for r in restricted], 1)
    flat = labels.reshape(-1, labels.shape[-1])
    if p.weights == "exp-threshold":
        wgt = torch.exp(aff / p.temperature) * allowed
        kth = torch.topk(wgt, p.topk, 1).values[:, -1:]
        wgt[wgt < kth] = 0
        return (wgt / wgt.sum(1, keepdim=True)) @ flat
    logits = (aff + torch.where(allowed, 0.0, -1e10)) / p.temperature
    val, idx = torch.topk(logits, p.topk, 1)
    return torch.einsum("bk,bkc->bc", F.softmax(val, 1), flat[idx])


@pytest.mark.parametrize("variant", ["dino", "crw"])
@pytest.mark.parametrize("d", [5, 40])  # window views (narrow features) and band products (wide ones)
def test_windowed_computation_equals_the_dense_reference(variant, d):
    g = torch.Generator().manual_seed(3)
    h, w, c = 9, 11, 3
    params = PropagationParams(**{**VARIANTS[variant].__dict__, "radius": 3.5 if variant == "crw" else 3})
    sources = F.normalize(torch.randn(4, h * w, d, generator=g), dim=-1)
    target = F.normalize(torch.randn(h * w, d, generator=g), dim=-1)
    labels = F.softmax(torch.randn(4, h * w, c, generator=g), -1)
    restricted = [params.window_on_first, True, True, True]
    got = propagate_step(target, sources, labels, restricted, h, w, params, rows_per_block=2)  # several blocks
    want = _dense_reference(target, sources, labels, restricted, h, w, params)
    assert torch.allclose(got, want, atol=1e-5)


def test_propagate_keeps_step_zero_and_follows_a_moving_object():
    # an object (feature [1, 0]) moving right by one cell per step over background [0, 1]
    n, h, w = 4, 3, 8
    feats = torch.zeros(n, h, w, 2)
    feats[..., 1] = 1
    for t in range(n):
        feats[t, 1, 2 + t] = torch.tensor([1.0, 0.0])
    first = torch.zeros(2, h, w)
    first[0] = 1
    first[0, 1, 2], first[1, 1, 2] = 0, 1
    soft = propagate(feats, first, VARIANTS["dino"])
    assert torch.equal(soft[0], first)
    for t in range(1, n):
        obj = soft[t, 1]
        assert obj[1, 2 + t] > 0.99 and obj.sum() - obj[1, 2 + t] < 0.01


def test_output_steps_dino_upsamples_by_the_stride_then_norm_mask():
    soft = torch.tensor([[[0.2, 0.6]], [[0.8, 0.4]]])  # (C=2, h=1, w=2)
    normed = norm_mask(soft)
    assert torch.allclose(normed, torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]]))
    lab = labels_to_pixels(soft, (2, 3), normalize=True, stride=(2, 2))  # 2x4 pixels cropped to 2x3
    assert lab.shape == (2, 3) and lab[0].tolist() == [1, 1, 0]
    assert labels_to_pixels(soft, (1, 2), normalize=False).tolist() == [[1, 0]]  # CRW: resized to the frame


def test_dino_resize_rule_and_first_labels():
    assert target_size(480, 854, 480, 64) == (480, 832)
    assert target_size(480, 910, 480, 64) == (480, 896)
    assert target_size(854, 480, 480, 64) == (832, 480)
    assert target_size(240, 427, 0, 1) == (240, 427)  # CRW: native size
    gt = np.zeros((4, 6), np.uint8)
    gt[:2, 3:] = 2
    gt[3, 0] = 255  # void counts as background
    lab = first_step_labels(gt, (2, 3), 3, "dino")  # PIL nearest samples pixel centres: rows 1, 3; columns 1, 3, 5
    assert lab.shape == (3, 2, 3) and lab.argmax(0).tolist() == [[0, 2, 2], [0, 0, 0]]
    soft = first_step_labels(gt, (2, 3), 3, "crw")
    assert torch.allclose(soft.sum(0), torch.ones(2, 3)) and soft[2, 0, 2] > 0.5
