"""The open-vocabulary class split of zero-shot temporal action localization (STALE's 50% seen / 50% unseen).

STALE (Nag et al., ECCV 2022) splits the classes at random into a seen half (used for training) and an unseen half
(the only classes evaluated), and averages over 10 random splits. A training-free method never uses the seen half;
what matters is which classes are scored. We fix one split per seed: the class names sorted, permuted with
numpy's default_rng(seed), the first floor(C/2) seen and the rest unseen (an odd class count gives the unseen half
the extra class). Both halves are written into every result that uses them.
"""
from __future__ import annotations

import numpy as np


def seen_unseen(classes: list[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """(seen, unseen) class names, each sorted."""
    names = sorted(set(classes))
    if len(names) < 2:
        raise ValueError(f"a seen/unseen split needs at least 2 classes, got {names}")
    perm = np.random.default_rng(seed).permutation(len(names))
    half = len(names) // 2
    return sorted(names[i] for i in perm[:half]), sorted(names[i] for i in perm[half:])
