"""Fréchet distance: closed forms, both routes, streaming statistics, sample-size handling, `score frechet`."""
import json

import numpy as np
import pytest
import scipy.linalg

from harness.cli import main
from harness.metrics.frechet import (FeatureStats, bootstrap_frechet, frechet_distance_eig, frechet_distance_scipy,
                                     frechet_from_features, gaussian_stats, trace_sqrt_product)


def _random_spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def test_equal_covariances_give_the_squared_mean_distance(rng):
    s = _random_spd(rng, 12)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    want = float(np.sum((mu1 - mu2) ** 2))
    assert frechet_distance_scipy(mu1, s, mu2, s) == pytest.approx(want, rel=1e-9, abs=1e-9)
    assert frechet_distance_eig(mu1, s, mu2, s) == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_diagonal_covariances_match_the_closed_form(rng):
    v1, v2 = rng.uniform(0.1, 3, 20), rng.uniform(0.1, 3, 20)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    want = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2))
    for f in (frechet_distance_scipy, frechet_distance_eig):
        assert f(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want, rel=1e-10)


def test_commuting_covariances_match_the_closed_form(rng):
    # S1 = Q diag(a) Qᵀ, S2 = Q diag(b) Qᵀ: d² = |mu1-mu2|² + Σ (sqrt a - sqrt b)²
    q, _ = np.linalg.qr(rng.normal(size=(15, 15)))
    a, b = rng.uniform(0.5, 4, 15), rng.uniform(0.5, 4, 15)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    want = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    assert frechet_distance_eig(np.zeros(15), s1, np.zeros(15), s2) == pytest.approx(want, rel=1e-9)
    assert frechet_distance_scipy(np.zeros(15), s1, np.zeros(15), s2) == pytest.approx(want, rel=1e-9)


def test_both_routes_agree_on_sampled_gaussians_and_with_an_independent_numpy_computation(rng):
    a = rng.normal(size=(600, 32)) @ rng.normal(size=(32, 32)) * 0.3 + 1.0
    b = rng.normal(size=(500, 32)) * 1.2 + 0.5
    res = frechet_from_features(a, b)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2)
    independent = float(np.real(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)))
    assert res.value == pytest.approx(independent, rel=1e-9)
    assert res.value_eig == pytest.approx(res.value, rel=1e-8)
    assert (res.n_a, res.n_b, res.dim) == (600, 500, 32) and res.warning is None


def test_robust_route_handles_singular_covariances_and_identical_sets(rng):
    a = rng.normal(size=(10, 40))  # 10 samples, 40 dimensions: singular covariances
    b = rng.normal(size=(12, 40))
    res = frechet_from_features(a, b)
    assert res.value_eig > 0 and np.isfinite(res.value_eig)
    assert "singular" in res.warning and "fewer than 256" in res.warning
    # identical sets: 0 up to round-off (square roots of ~1e-17 eigenvalues), relative to the total variance
    same = frechet_from_features(a, a.copy())
    assert abs(same.value_eig) < 1e-7 * np.trace(np.cov(a, rowvar=False))
    # Tr (S S)^½ = Tr S for PSD S (eigenvalue route, singular S)
    s = np.cov(a, rowvar=False)
    assert trace_sqrt_product(s, s) == pytest.approx(np.trace(s), rel=1e-7)


def test_streaming_statistics_equal_batch_statistics(rng):
    x = rng.normal(size=(1000, 16)) * 3 + 100.0  # a large offset: the shifted sums stay well conditioned
    stats = FeatureStats()
    for chunk in np.array_split(x, 7):
        stats.update(chunk)
    mu, cov = gaussian_stats(x)
    assert stats.n == 1000
    np.testing.assert_allclose(stats.mean(), mu, rtol=1e-12)
    np.testing.assert_allclose(stats.cov(), cov, rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="dimensions"):
        stats.update(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        stats.update(np.full((1, 16), np.nan))


def test_fewer_than_two_samples_is_null_with_the_reason(rng):
    res = frechet_from_features(rng.normal(size=(1, 4)), rng.normal(size=(5, 4)))
    assert res.value is None and res.value_eig is None and "at least 2 samples" in res.reason


def test_bootstrap_interval_contains_the_estimate_and_is_reproducible(rng):
    a, b = rng.normal(size=(80, 6)), rng.normal(size=(80, 6)) + 0.5
    est = frechet_from_features(a, b).value
    ci = bootstrap_frechet(a, b, iters=200, seed=3, paired=True)
    assert ci[0] < est < ci[1]
    assert ci == bootstrap_frechet(a, b, iters=200, seed=3, paired=True)
    assert bootstrap_frechet(a[:1], b[:1], iters=10) is None


def test_score_frechet_prints_and_writes_both_routes(tmp_path, rng, capsys):
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(260, 8)) * 1.1
    np.save(tmp_path / "a.npy", a), np.save(tmp_path / "b.npy", b)
    out = tmp_path / "out.json"
    assert main(["score", "frechet", "--a", str(tmp_path / "a.npy"), "--b", str(tmp_path / "b.npy"),
                 "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    assert got["frechet"] == pytest.approx(frechet_distance_scipy(mu1, s1, mu2, s2), rel=1e-12)
    assert got["frechet_eig"] == pytest.approx(got["frechet"], rel=1e-8)
    assert got["n_a"] == 300 and got["n_b"] == 260
    assert "frechet" in capsys.readouterr().out


def test_score_frechet_names_the_file_and_entry_of_bad_input(tmp_path, rng, capsys):
    a = rng.normal(size=(5, 3))
    bad = a.copy()
    bad[2, 1] = np.nan
    np.save(tmp_path / "a.npy", a), np.save(tmp_path / "bad.npy", bad), np.save(tmp_path / "c.npy", a[:, :2])
    assert main(["score", "frechet", "--a", str(tmp_path / "a.npy"), "--b", str(tmp_path / "bad.npy")]) == 2
    assert "bad.npy: entry (2, 1) is nan" in capsys.readouterr().err
    assert main(["score", "frechet", "--a", str(tmp_path / "a.npy"), "--b", str(tmp_path / "c.npy")]) == 2
    assert "c.npy: has 2 feature columns" in capsys.readouterr().err
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    assert main(["score", "frechet", "--a", str(tmp_path / "a.npy"), "--b", str(tmp_path / "obj.npy")]) == 2
    assert "obj.npy" in capsys.readouterr().err


def test_a_sample_factor_gives_the_same_trace_as_the_cholesky_and_eigen_routes(rng):
    x, y = rng.normal(size=(30, 8)), rng.normal(size=(40, 8))
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    r = (x - x.mean(0)) / np.sqrt(len(x) - 1)  # S1 = RᵀR
    want = trace_sqrt_product(s1, s2)
    assert trace_sqrt_product(s1, s2, factor1=r) == pytest.approx(want, rel=1e-10)
    assert np.trace(scipy.linalg.sqrtm(s1 @ s2)).real == pytest.approx(want, rel=1e-8)
