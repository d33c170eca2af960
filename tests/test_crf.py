"""The dense spatio-temporal CRF on toy volumes: messages against the exact O(N²) sums, mean field against the exact
energy, and the parts the ytvis21 task builds its unary from."""
import numpy as np
import pytest
import torch

from tasks.ytvis_seg import components, otsu_threshold, rounded_size
from tasks.zeroshot.crf import (CRFParams, colour_features, energy, gaussian_filter, gaussian_matrix, kmeans_colours,
                                mean_field, messages, pairwise_weights)

PARAMS = CRFParams(iterations=5, w_app=2.0, theta_alpha=4.0, theta_alpha_t=1.0, theta_beta=13.0, w_smooth=1.0,
                   theta_gamma=1.5, theta_gamma_t=1.0)


def _toy(seed=0, flip=0.25):
    """A red box moving over a blue background in 3 frames of 10x12, and a unary that is right with margin 0-0.3
    and then flipped on `flip` of the voxels."""
    g = torch.Generator().manual_seed(seed)
    t, h, w = 3, 10, 12
    gt = torch.zeros(t, h, w, dtype=torch.long)
    for f in range(t):
        gt[f, 3:8, 3 + f:9 + f] = 1
    image = torch.where(gt[..., None] == 1, torch.tensor([200.0, 40, 40]), torch.tensor([30.0, 30, 200]))
    margin = 0.3 * torch.rand(t, h, w, generator=g)
    p1 = torch.where(gt == 1, 0.5 + margin, 0.5 - margin)
    flipped = torch.rand(t, h, w, generator=g) < flip
    p1 = torch.where(flipped, 1 - p1, p1)
    return gt, image, -torch.log(torch.stack([1 - p1, p1]))


def test_gaussian_filter_is_the_exact_separable_position_kernel():
    x = torch.zeros(1, 3, 4, 5)
    x[0, 1, 2, 3] = 1.0
    out = gaussian_filter(x, 1.0, 2.0)
    tt, yy, xx = torch.meshgrid(torch.arange(3), torch.arange(4), torch.arange(5), indexing="ij")
    want = torch.exp(-((yy - 2) ** 2 + (xx - 3) ** 2) / 8.0 - (tt - 1) ** 2 / 2.0)
    assert torch.allclose(out[0], want.float(), atol=1e-6)
    assert torch.equal(gaussian_matrix(3, 0), torch.eye(3))


def test_messages_equal_the_exact_dense_sums_when_every_colour_is_a_centre():
    _, image, _ = _toy()
    phi = colour_features(image, PARAMS.theta_beta, PARAMS.centres)
    q = torch.softmax(torch.randn(2, *image.shape[:3], generator=torch.Generator().manual_seed(1)), 0)
    app, smooth = messages(q, phi, PARAMS)
    flat_q = q.reshape(2, -1).T.double()
    only_app = pairwise_weights(image, CRFParams(**{**PARAMS.__dict__, "w_app": 1.0, "w_smooth": 0.0}))
    only_smooth = pairwise_weights(image, CRFParams(**{**PARAMS.__dict__, "w_app": 0.0, "w_smooth": 1.0}))
    assert torch.allclose(app.reshape(2, -1).T.double(), only_app @ flat_q, atol=1e-4)
    assert torch.allclose(smooth.reshape(2, -1).T.double(), only_smooth @ flat_q, atol=1e-4)


def test_nystrom_colour_kernel_approximates_unseen_colours_and_improves_with_centres():
    g = torch.Generator().manual_seed(2)
    image = torch.rand(2, 6, 6, 3, generator=g) * 60 + torch.tensor([100.0, 50, 20])  # 72 distinct colours
    col = image.reshape(-1, 3).double()
    exact = torch.exp(-torch.cdist(col, col) ** 2 / (2 * 30.0 ** 2))
    errors = []
    for m in (16, 32, 72):
        phi = colour_features(image, 30.0, m).reshape(-1, 72).T.double()
        errors.append((phi @ phi.T - exact).abs())
    assert errors[0].mean() < 0.01 and errors[0].max() < 0.25  # 16 centres for 72 colours
    assert errors[1].max() < 0.02 and errors[2].max() < 1e-4  # every colour a centre: exact


def test_mean_field_moves_a_noisy_unary_to_the_smooth_solution_and_lowers_the_energy():
    gt, image, unary = _toy()
    start = unary.argmin(0)
    history = []
    q = mean_field(unary, image, PARAMS, history=history)
    end = q.argmax(0)
    assert (start == gt).float().mean() < 0.8  # a quarter of the voxels flipped
    assert torch.equal(end, gt)
    e_start, e_end = energy(start, unary, image, PARAMS), energy(end, unary, image, PARAMS)
    assert e_end < 0.2 * e_start
    # every iteration's labelling is at least as good as the unary's, and the last is the best
    energies = [energy(h.argmax(0), unary, image, PARAMS) for h in history]
    assert max(energies) <= e_start and energies[-1] == min(energies) == pytest.approx(e_end)


def test_a_confident_clean_unary_is_left_alone():
    gt, image, _ = _toy()
    unary = -torch.log(torch.stack([(gt == 0).float(), (gt == 1).float()]) * 0.98 + 0.01)
    assert torch.equal(mean_field(unary, image, PARAMS).argmax(0), gt)


def test_energy_counts_each_disagreeing_pair_once():
    image = torch.zeros(1, 1, 2, 3)
    unary = torch.tensor([[[[0.0, 1.0]]], [[[5.0, 0.0]]]])  # (L=2, T=1, H=1, W=2)
    p = CRFParams(w_app=1.0, w_smooth=0.0, theta_alpha=1.0, theta_alpha_t=1.0, theta_beta=1.0)
    labels = torch.tensor([[[0, 1]]])
    assert energy(labels, unary, image, p) == pytest.approx(0.0 + 0.0 + np.exp(-0.5))


def test_kmeans_colours_is_deterministic_and_returns_few_colours_as_they_are():
    few = np.array([[1, 2, 3], [4, 5, 6], [1, 2, 3]], float)
    assert kmeans_colours(few, 8).tolist() == [[1, 2, 3], [4, 5, 6]]
    many = np.random.default_rng(0).random((500, 3)) * 255
    a, b = kmeans_colours(many, 8, seed=3), kmeans_colours(many, 8, seed=3)
    assert a.shape == (8, 3) and np.array_equal(a, b)


def test_unary_helpers_otsu_components_sizes():
    values = np.concatenate([np.full(90, 0.1), np.full(10, 0.9)])
    assert 0.1 < otsu_threshold(values) <= 0.9
    labels = np.zeros((2, 5, 5), int)
    labels[0, :2, :2] = 1
    labels[1, 1:3, 1:3] = 1  # touches the first block across frames: one 3-D component
    labels[1, 4, 4] = 1  # a single voxel: below min_voxels
    comps = components(labels, 1, min_voxels=2)
    assert len(comps) == 1 and comps[0].sum() == 8
    assert rounded_size(720, 1280, 360, 16) == (368, 640) and rounded_size(144, 256, 360, 16) == (368, 640)
