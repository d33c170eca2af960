"""Text-to-video: `msrvtt-t2v` (MSR-VTT test) and `anetcap-t2v` (ActivityNet Captions val_1).

Papers disagree on which MSR-VTT captions they prompt with; here the rule is fixed and recorded. Every video keeps
one caption, chosen as `captions[derive_seed(caption_seed, "caption", video_id) mod len(captions)]` with the
captions ordered by sen_id (`caption_rule: seeded-uniform`): independent of every other video, the same on every
machine, and changed only by `caption_seed`. The chosen caption, its index and its sen_id are recorded per sample.
The real clips are the test videos themselves, one centred clip each at the protocol's frame rate.

ActivityNet Captions: one sentence per val_1 video, chosen by the same rule; the real clip is cut from that
sentence's segment (centred on it, at the protocol's frame rate), so the prompt describes the real clip it is
compared with.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.hashing import derive_seed
from harness.metrics.reference_fvd import ReferenceSet
from harness.task import Sample, SampleList
from tasks.generation import GenerationProtocol, GenerationTask, PromptSample

CAPTION_RULES = ("seeded-uniform",)


def seeded_choice(seed: int, key: str, n: int) -> int:
    """The index of the item picked for `key` among n: derive_seed(seed, "caption", key) mod n."""
    if n <= 0:
        raise ValueError("nothing to choose from")
    return derive_seed(seed, "caption", key) % n


@dataclass(frozen=True)
class MSRVTTT2VProtocol(GenerationProtocol):
    split: str = "test"  # the 2,990 videos of the JSON's test split (not the 1k-A retrieval subset)
    caption_rule: str = "seeded-uniform"
    caption_seed: int = 0


@dataclass(frozen=True)
class ANetCapT2VProtocol(GenerationProtocol):
    split: str = "val_1"
    caption_rule: str = "seeded-uniform"
    caption_seed: int = 0


class _CaptionTask(GenerationTask):
    def __init__(self, **overrides: Any):
        super().__init__(**overrides)
        if self.protocol.caption_rule not in CAPTION_RULES:
            raise ValueError(f"unknown caption rule {self.protocol.caption_rule!r} (known: {CAPTION_RULES})")

    def reference_set(self, root: Path) -> ReferenceSet:
        """The real clips: one per listed video (the segment of the chosen sentence for ActivityNet Captions)."""
        samples = self.list_prompts(root).samples
        identity = {**self.real_clip_protocol(), "split": self.protocol.split}
        return ReferenceSet(self.name, identity, samples, self.load_real_clip,
                            fingerprint=lambda s: {**Sample.fingerprint(s), "center_time": s.meta.get("center_time")},
                            description=self.reference_description())

    def reference_description(self) -> str:
        return f"{self.dataset} {self.protocol.split}"


class MSRVTTT2V(_CaptionTask):
    """MSR-VTT test: text-to-video from one seeded caption per video; FVD vs the test clips, CLIPSIM."""

    name: ClassVar[str] = "msrvtt-t2v"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "msrvtt"
    Protocol: ClassVar[type] = MSRVTTT2VProtocol

    def list_prompts(self, root: Path) -> SampleList:
        from tasks.msrvtt import list_split

        listing = list_split(root, self.protocol.split)
        samples, rejected = [], list(listing.rejected)
        for s in listing.samples:
            captions, sen_ids = s.meta["captions"], s.meta["sen_ids"]
            if not captions:
                rejected.append({"sample_id": s.id, "path": s.path or "", "error": f"{s.id}: has no caption"})
                continue
            i = seeded_choice(self.protocol.caption_seed, s.id, len(captions))
            record = {"caption_index": i, "sen_id": sen_ids[i], "n_captions": len(captions)}
            samples.append(PromptSample(s.id, s.path, stratum=s.stratum, cluster=s.id,
                                  meta={"prompt": captions[i], "record": record}))
        return SampleList(samples, rejected)


class ANetCapT2V(_CaptionTask):
    """ActivityNet Captions val_1: text-to-video from one seeded sentence per video; FVD vs that sentence's segment."""

    name: ClassVar[str] = "anetcap-t2v"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "activitynet"
    Protocol: ClassVar[type] = ANetCapT2VProtocol

    def list_prompts(self, root: Path) -> SampleList:
        from tasks.activitynet import list_anet_captions

        listing = list_anet_captions(root, self.protocol.split)
        samples, rejected = [], list(listing.rejected)
        for s in listing.samples:
            sentences, stamps = s.meta["sentences"], s.meta["timestamps"]
            if not sentences:
                rejected.append({"sample_id": s.id, "path": s.path or "", "error": f"{s.id}: has no sentence"})
                continue
            i = seeded_choice(self.protocol.caption_seed, s.meta["key"], len(sentences))
            start, end = stamps[i]
            record = {"sentence_index": i, "segment": [start, end], "n_sentences": len(sentences)}
            samples.append(PromptSample(s.id, s.path, cluster=s.id, meta={"prompt": sentences[i], "record": record,
                                                                     "center_time": (start + end) / 2}))
        return SampleList(samples, rejected)
