"""`python -m harness score <kind>`: score predictions made by anyone with the code the tasks use.

Each scorer is a small class: `add_arguments(parser)` declares its inputs, `score(args)` returns a flat dict whose keys
are the ones the conformance fixtures (../shared/golden/README.md) define, and `table(result)` renders it for humans.
Scorers are registered lazily, so `score recon` never imports the segmentation code.
"""
from __future__ import annotations

from harness.registry import Registry

SCORERS = Registry("scorer", "pyratok_bench.scorers", lambda: {
    "recon": "harness.score.recon:ReconScorer",
    "davis": "harness.score.davis:DavisScorer",
    "ytvis": "harness.score.ytvis:YTVISScorer",
    "thumos14": "harness.score.localization:Thumos14Scorer",
    "activitynet": "harness.score.localization:ActivityNetScorer",
    "frechet": "harness.score.frechet:FrechetScorer",
    "fvd": "harness.score.fvd:FVDScorer",
    "classification": "harness.score.classification:ClassificationScorer",
    "retrieval": "harness.score.retrieval:RetrievalScorer",
    "t2v": "harness.score.t2v:T2VScorer",
})
