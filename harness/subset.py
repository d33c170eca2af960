"""--limit as a deterministic, stratified subset rather than the first N (split lists are sorted by class)."""
from __future__ import annotations

from collections import defaultdict

from harness.hashing import derive_seed
from harness.task import Sample


def stratified_subset(samples: list[Sample], limit: int, seed: int = 0) -> list[Sample]:
    """`limit` samples spread round-robin over strata (classes), each stratum in a seeded order; sorted by id."""
    if limit <= 0:
        return []
    strata: dict[str | None, list[Sample]] = defaultdict(list)
    for s in samples:
        strata[s.stratum].append(s)
    queues = [sorted(v, key=lambda s: derive_seed(seed, "limit", s.id))
              for _, v in sorted(strata.items(), key=lambda kv: str(kv[0]))]
    # strata visited in a seeded order too, so a limit smaller than the number of classes is not alphabetical
    queues.sort(key=lambda q: derive_seed(seed, "stratum", str(q[0].stratum)))
    picked: list[Sample] = []
    depth = 0
    while len(picked) < limit and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(picked) < limit:
                picked.append(q[depth])
        depth += 1
    return sorted(picked, key=lambda s: s.id)
