"""`ucf101-gen`: class-conditional generation on UCF-101, FVD against the real videos.

The prompt is the class name as plain words (`tasks.mini.vocab.class_text`: "ApplyEyeMakeup" -> "apply eye makeup");
an adapter that conditions on class indices maps it back through classInd.txt. 2,048 videos by default (the
StyleGAN-V / DIGAN / Latte count), spread over the classes as evenly as possible: every class gets floor(n/C) and the
n mod C classes first in a seeded order (derive_seed(sample_seed, "extra", class)) one more. Each video is one sample
`<Class>/<nnnn>`, so `--limit` takes a class-stratified subset.

Real statistics: `real_split` names the videos they come from. `train+test` (every video of split 1's train and test
lists, i.e. all 13,320) is what StyleGAN-V and DIGAN use (stylegan-v #30, digan #16); `test` is testlist01 only,
`train` trainlist01 only. One centred clip per video at the protocol's frame rate (the native 25 fps by default:
consecutive frames), resized to cover and centre-cropped. StyleGAN-V instead takes the first 2,048 items of its
dataset at random offsets, and draws class labels from the data set's label distribution; both choices are
documented differences (docs/generation.md).

On the mini split the task generates `mini_num_samples` videos (2 per class) and says so in a warning.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.errors import MissingDataError
from harness.hashing import derive_seed
from harness.metrics.reference_fvd import ReferenceSet
from harness.task import Sample, SampleList
from tasks.generation import GenerationProtocol, GenerationTask, PromptSample, is_mini_root

REAL_SPLITS = {"train+test": ("trainlist01", "testlist01"), "test": ("testlist01",), "train": ("trainlist01",)}


@dataclass(frozen=True)
class UCF101GenProtocol(GenerationProtocol):
    num_frames: int = 16
    height: int = 128
    width: int = 128
    fps: float = 25.0
    clipsim: bool = False  # a class name is not a caption; set true to report it anyway
    num_samples: int = 2048
    mini_num_samples: int = 16  # used instead of num_samples on the mini split (with a warning)
    sample_seed: int = 0  # which classes get the remainder of num_samples / classes
    real_split: str = "train+test"


def spread_over_classes(classes: list[str], n: int, seed: int) -> dict[str, int]:
    """n samples over the classes as evenly as possible: floor(n / C) each, plus one for the n mod C classes that
    come first in a seeded order. Deterministic, and the result does not depend on the order of `classes`."""
    if not classes:
        raise ValueError("no classes to spread samples over")
    base, extra = divmod(int(n), len(classes))
    lucky = set(sorted(classes, key=lambda c: (derive_seed(seed, "extra", c), c))[:extra])
    return {c: base + (c in lucky) for c in classes}


class UCF101Gen(GenerationTask):
    """UCF-101 class-conditional generation: 2,048 videos of 16 frames at 128x128; FVD vs train+test real clips."""

    name: ClassVar[str] = "ucf101-gen"
    version: ClassVar[int] = 1
    dataset: ClassVar[str] = "ucf101"
    Protocol: ClassVar[type] = UCF101GenProtocol
    headline: ClassVar[tuple[str, ...]] = ("fvd_styleganv", "fvd_videogpt")
    scoring_fields: ClassVar[frozenset[str]] = GenerationTask.scoring_fields | {"real_split"}
    reference_videos: ClassVar[int | None] = 2048

    def __init__(self, **overrides):
        super().__init__(**overrides)
        self._missing_real = 0  # listed real videos absent from the copy (known once the real set is listed)
        if self.protocol.real_split not in REAL_SPLITS:
            raise ValueError(f"unknown real_split {self.protocol.real_split!r} (known: {', '.join(REAL_SPLITS)})")

    def list_prompts(self, root: Path) -> SampleList:
        from tasks.mini.vocab import class_text
        from tasks.ucf101 import SPLIT_DIR, UCF101, read_class_index

        class_file = Path(root) / SPLIT_DIR / "classInd.txt"
        if not class_file.exists():
            raise MissingDataError(UCF101().missing_message(Path(root), f"the class list {class_file}"))
        classes = read_class_index(class_file)
        p = self.protocol
        n = p.mini_num_samples if is_mini_root(root, self.dataset) else p.num_samples
        counts = spread_over_classes(list(classes), n, p.sample_seed)
        width = max(4, len(str(max(counts.values(), default=0))))
        samples = [PromptSample(f"{cls}/{i:0{width}d}", None, stratum=cls, cluster=cls,
                                meta={"prompt": class_text(cls), "record": {"class": cls, "label": label}})
                   for cls, label in sorted(classes.items(), key=lambda kv: kv[1]) for i in range(counts[cls])]
        return SampleList(samples)

    def reference_set(self, root: Path) -> ReferenceSet:
        from tasks.ucf101 import list_split

        seen: dict[str, Sample] = {}
        missing: set[str] = set()
        for split in REAL_SPLITS[self.protocol.real_split]:
            listing = list_split(root, split)
            missing |= {r["sample_id"] or r["error"] for r in listing.rejected}
            for s in listing.samples:
                seen.setdefault(s.id, s)
        self._missing_real = len(missing)
        identity = {**self.real_clip_protocol(), "real_split": self.protocol.real_split}
        return ReferenceSet(self.name, identity, [seen[k] for k in sorted(seen)], self.load_real_clip,
                            description=self.reference_description())

    def reference_description(self) -> str:
        lists = " + ".join(REAL_SPLITS[self.protocol.real_split])
        missing = f"; {self._missing_real} listed videos missing" if self._missing_real else ""
        return f"UCF-101 {self.protocol.real_split} ({lists}{missing})"
