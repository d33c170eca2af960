"""`score frechet`: the Fréchet distance between two feature sets (n × d arrays), by both routes."""
from __future__ import annotations

import argparse

from harness.errors import DataError
from harness.score.arrays import load_array


class FrechetScorer:
    help = "Fréchet distance between two (n, d) feature arrays (StyleGAN-V convention and the robust route)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--a", required=True, help="features of set A: .npy/.npz/.csv, one row per sample")
        p.add_argument("--b", required=True, help="features of set B, same number of columns")
        p.add_argument("--bootstrap", type=int, default=0, help="bootstrap replicates for a 95%% interval (unpaired)")
        p.add_argument("--seed", type=int, default=0)

    def score(self, args: argparse.Namespace) -> dict:
        from harness.metrics.frechet import bootstrap_frechet, frechet_from_features

        a, b = load_array(args.a, ndim=2), load_array(args.b, ndim=2)
        if a.shape[1] != b.shape[1]:
            raise DataError(args.b, f"has {b.shape[1]} feature columns, {args.a} has {a.shape[1]}")
        res = frechet_from_features(a, b)
        out = {**res.as_dict(), "variant": "mean + np.cov(rowvar=False) (n-1); frechet: scipy.linalg.sqrtm(S1 S2), "
                                           "real part (StyleGAN-V); frechet_eig: eigenvalues of S1^1/2 S2 S1^1/2"}
        if args.bootstrap and res.value is not None:
            ci = bootstrap_frechet(a, b, args.bootstrap, args.seed, paired=False)
            if ci:
                out["ci_low"], out["ci_high"] = ci
        return out

    @staticmethod
    def table(result: dict) -> str:
        rows = [(k, result[k]) for k in ("frechet", "frechet_eig", "ci_low", "ci_high", "n_a", "n_b", "dim", "reason",
                                         "warning") if k in result]
        return "\n".join(f"{k:>12}  {v:.6f}" if isinstance(v, float) else f"{k:>12}  {v}" for k, v in rows)
