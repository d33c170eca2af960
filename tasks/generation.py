"""Generation tasks: a model generates videos from prompts; they are scored against real clips of the data set.

Metrics (each named with its exact variant in the result):
  fvd_<detector>        Fréchet distance of I3D features, generated videos vs real clips (every lineage whose
                        weights are present; null with the reason otherwise), with a bootstrap interval over prompts
  clipsim               mean over videos of the mean over frames of CLIP's image-text cosine with the prompt
  codebook/<level>/...  usage of the generated tokens: the tokens the adapter sampled, or the generated video
                        re-encoded by the adapter when it returns none but can encode
  generated_videos      how many videos were scored, with a warning when it is not the protocol's count

One sample is one prompt; it gets `seeds_per_prompt` videos, each with its own seed derived from the sample's seed
(itself derived from the run seed and the sample id), so no seed depends on sharding, batching or resuming.

Every generated video goes through the protocol's writer and is scored as the frames its mp4 decodes to, in `run`
as in `score t2v` (see harness/generated.py), so scoring the folder `generate` writes gives the run's numbers exactly.
The real clips are cut from the data set's videos at the protocol's frame rate, resized to cover the protocol's size
and centre-cropped; their feature statistics are cached (harness/metrics/reference_fvd.py).
"""
from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from harness.errors import HarnessError
from harness.generated import codes_to_levels, decode_mp4_bytes, encode_mp4, tokens_to_codes, video_file_name, \
    writer_spec
from harness.hashing import derive_seed
from harness.metrics.codebook import level_histogram, usage
from harness.metrics.fvd import DETECTORS, detector_unavailable, feature_extractor
from harness.metrics.reference_fvd import ReferenceSet, ReferenceStats, ReferenceStatsCache, \
    bootstrap_to_reference, deterministic_kernels, frechet_to_reference, reference_stats
from harness.stats import mean_metric
from harness.task import Metric, Record, Sample, SampleList, Task
from harness.video import probe, read_frames, to_model_input, to_uint8_frames
from models.base import GENERATE, RECONSTRUCT, ModelAdapter


class GenerationOutputError(HarnessError):
    """An adapter answered a generation request with something unusable (wrong shape, NaN)."""


@dataclass(frozen=True)
class GenerationProtocol:
    num_frames: int = 16
    height: int = 256
    width: int = 256
    fps: float = 8.0  # the frame rate of the generated videos (written into the mp4) and of the real clips
    seeds_per_prompt: int = 1
    writer: str = "lossless"  # see harness.generated.WRITERS
    fvd_detectors: tuple[str, ...] = ("styleganv", "videogpt")  # reported as fvd_<detector>
    fvd_bootstrap_iters: int = 100
    clipsim: bool = True


@dataclass(frozen=True)
class PromptSample(Sample):
    """A prompt to generate from; its prompt is part of its fingerprint, so a changed annotation file never serves
    videos generated from the old text out of the cache."""

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "prompt": self.meta["prompt"]}


@dataclass(frozen=True)
class VideoPlan:
    """One video to generate: its prompt and its seed."""

    sample_id: str
    prompt: str
    seed_index: int
    seed: int | None
    file_name: str | None = None  # the file it was read from, when not the standard name

    @property
    def file(self) -> str:
        return self.file_name or video_file_name(self.sample_id, self.seed_index)


@dataclass
class GeneratedClip:
    """A generated video as it is scored: the frames its mp4 decodes to, and its codes (.codes.npz arrays)."""

    plan: VideoPlan
    frames: np.ndarray  # uint8 (T, H, W, 3)
    data: bytes | None = None  # the mp4 (in-process and `generate`; None when read from a folder)
    codes: dict[str, np.ndarray] | None = None
    resized: bool = False


def clip_indices(total: int, native_fps: float, fps: float, count: int, center: float | None = None) -> np.ndarray:
    """Frame indices of a real clip: `count` frames at `fps` (every native_fps/fps-th frame, rounded down), centred on
    frame `center` (default: the middle of the video) and shifted to stay inside it; a video too short for the clip
    repeats its last frame. At fps == native_fps this is harness.video.sample_indices(mode="center")."""
    if total <= 0 or count <= 0:
        raise ValueError("a clip needs a video with frames and a positive frame count")
    step = native_fps / fps if native_fps > 0 and fps > 0 else 1.0
    span = (count - 1) * step
    middle = (total - 1) / 2 if center is None else center
    start = min(middle - span / 2, total - 1 - span)
    start = max(start, 0.0)
    idx = np.floor(start + np.arange(count) * step + 1e-9).astype(np.int64)
    return np.minimum(idx, total - 1)


def is_mini_root(root: Path, dataset: str) -> bool:
    """Whether `root` is a mini split the harness generated (harness.dataset.ensure_mini)."""
    root = Path(root)
    return root.parent.name == "mini" and root.name.startswith(f"{dataset}-v") and (root / ".complete").exists()


class GenerationTask(Task):
    """Base of generation tasks; a subclass lists its prompts and its real clips."""

    family: ClassVar[str] = "generation"
    requires: ClassVar[frozenset[str]] = frozenset({GENERATE})
    default_batch_size: ClassVar[int] = 4
    headline: ClassVar[tuple[str, ...]] = ("fvd_styleganv", "clipsim")
    Protocol: ClassVar[type] = GenerationProtocol
    # protocol fields that change only how videos are scored, not which videos are generated (a folder generated
    # under one value can be scored under another)
    scoring_fields: ClassVar[frozenset[str]] = frozenset({"fvd_detectors", "fvd_bootstrap_iters", "clipsim"})
    reference_videos: ClassVar[int | None] = None  # the generated-video count of the protocol's lineage, if fixed

    def __init__(self, **overrides: Any):
        value = overrides.get("fvd_detectors")
        if isinstance(value, str):
            overrides["fvd_detectors"] = tuple(x.strip() for x in value.split(",") if x.strip())
        elif isinstance(value, list):
            overrides["fvd_detectors"] = tuple(value)
        super().__init__(**overrides)
        p = self.protocol
        unknown = [d for d in p.fvd_detectors if d not in DETECTORS]
        if unknown:
            raise ValueError(f"unknown FVD detector {unknown} (known: {', '.join(DETECTORS)})")
        writer_spec(p.writer)
        if min(p.num_frames, p.height, p.width, p.seeds_per_prompt) < 1 or not p.fps > 0:
            raise ValueError("num_frames, height, width, seeds_per_prompt and fps must be positive")
        self.device = torch.device("cpu")
        self.progress = True
        self._root: Path | None = None
        self._mini = False
        self._expected_videos: int | None = None
        self._extractors: dict[str, Any] = {}
        self._clip: Any = None
        self._reference: dict[str, ReferenceStats] | None = None
        self._weights: dict[str, str | None] | None = None

    # -- identity --------------------------------------------------------------------------------------------
    def metric_weights(self) -> dict[str, str | None]:
        """sha256 of the detector (and CLIP) weights this configuration scores with; None when absent."""
        if self._weights is None:
            from harness.metrics.clipsim import DEFAULT_CLIP
            from harness.weights import find_weight, weight_sha256

            names = [DETECTORS[d].weight for d in self.protocol.fvd_detectors]
            names += [DEFAULT_CLIP] if self.protocol.clipsim else []
            self._weights = {n: (weight_sha256(p) if (p := find_weight(n)) else None) for n in names}
        return self._weights

    def protocol_dict(self) -> dict[str, Any]:
        return {**super().protocol_dict(), "writer_settings": writer_spec(self.protocol.writer).as_dict(),
                "metric_weights": self.metric_weights()}

    def generation_protocol(self) -> dict[str, Any]:
        """The protocol fields that decide which videos are generated (recorded in a generation folder's manifest)."""
        return {k: v for k, v in super().protocol_dict().items() if k not in self.scoring_fields}

    def check_model(self, model: ModelAdapter) -> str | None:
        self.device = model.device  # metric networks run where the model runs
        return super().check_model(model)

    # -- listing ---------------------------------------------------------------------------------------------
    @abstractmethod
    def list_prompts(self, root: Path) -> SampleList:
        """One Sample per prompt, with meta["prompt"] and meta["record"] (what to record about the prompt)."""

    @abstractmethod
    def reference_set(self, root: Path) -> ReferenceSet:
        """The real clips FVD compares with."""

    def samples(self, root: Path) -> SampleList:
        listing = self.list_prompts(root)
        self._root, self._mini = Path(root), is_mini_root(root, self.dataset)
        self._expected_videos = len(listing.samples) * self.protocol.seeds_per_prompt
        self._reference = None
        return listing

    def load(self, sample: Sample) -> dict[str, Any]:
        return {"prompt": sample.meta["prompt"]}  # nothing to decode: the real clips are read once, for the stats

    def video_plans(self, sample: Sample, sample_seed: int) -> list[VideoPlan]:
        """The sample's videos: seed j = derive_seed(sample seed, "video", j)."""
        return [VideoPlan(sample.id, sample.meta["prompt"], j, derive_seed(sample_seed, "video", j))
                for j in range(self.protocol.seeds_per_prompt)]

    # -- real clips ------------------------------------------------------------------------------------------
    def real_clip_protocol(self) -> dict[str, Any]:
        p = self.protocol
        return {"version": self.version, "num_frames": p.num_frames, "height": p.height, "width": p.width,
                "fps": p.fps, "rule": "centred clip at fps (floor of index steps); resize to cover + centre crop"}

    def load_real_clip(self, sample: Sample) -> np.ndarray:
        """The real clip of a reference sample: at the protocol's fps, centred on meta["center_time"] seconds (default:
        the middle of the video), resized to cover height x width and centre-cropped."""
        from harness.generated import cover_crop

        p = self.protocol
        info = probe(sample.path)
        center = sample.meta.get("center_time")
        idx = clip_indices(info.num_frames, info.fps, p.fps, p.num_frames,
                           None if center is None else center * info.fps)
        return cover_crop(read_frames(sample.path, idx, info=info), p.height, p.width)

    # -- generating ------------------------------------------------------------------------------------------
    def generate_clips(self, model: ModelAdapter, plans: list[VideoPlan]) -> list[GeneratedClip]:
        """Ask the model for the planned videos, put each through the writer (encode + decode), and attach its
        codes: the tokens the adapter returned, else the decoded video re-encoded when the adapter can encode."""
        p = self.protocol
        if not plans:
            return []
        out = model.generate_videos([x.prompt for x in plans], [int(x.seed) for x in plans], p.num_frames,
                                    p.height, p.width)
        want = (len(plans), 3, p.num_frames, p.height, p.width)
        if tuple(out.video.shape) != want:
            raise GenerationOutputError(f"generated videos have shape {tuple(out.video.shape)}, expected {want}")
        if not torch.isfinite(out.video).all():
            raise GenerationOutputError("generated videos contain NaN or infinite values")
        if out.tokens is not None:
            sizes = {lv.name: (lv.bits if lv.bits is not None else lv.indices).shape[0] for lv in out.tokens.levels}
            if any(n != len(plans) for n in sizes.values()):
                raise GenerationOutputError(f"the returned tokens hold batches of {sizes} for {len(plans)} videos")
        frames = to_uint8_frames(out.video.detach().cpu()).numpy()
        clips = []
        for i, plan in enumerate(plans):
            data = encode_mp4(frames[i], p.fps, p.writer)
            decoded, _ = decode_mp4_bytes(data, p.num_frames, p.height, p.width)
            codes = tokens_to_codes(out.tokens, i, "sampled") if out.tokens is not None and out.tokens.levels \
                else self.reencode(model, decoded)
            clips.append(GeneratedClip(plan, decoded, data, codes))
        return clips

    @staticmethod
    def reencode(model: ModelAdapter | None, frames: np.ndarray) -> dict[str, np.ndarray] | None:
        """The codes of one decoded video re-encoded by `model` (one video per call, so the codes never depend on
        the batch); None when the model cannot encode or has no discrete codes."""
        if model is None or RECONSTRUCT not in model.capabilities:
            return None
        with torch.inference_mode():
            tokens = model.encode(to_model_input(torch.from_numpy(frames)[None]).to(model.device))
        return tokens_to_codes(tokens, 0, "re-encoded") if tokens.levels else None

    def evaluate(self, model: ModelAdapter, batch: list[tuple[Sample, Any]], seeds: list[int]) -> list[Record]:
        plans = [self.video_plans(sample, seed) for (sample, _), seed in zip(batch, seeds)]
        clips = iter(self.generate_clips(model, [x for ps in plans for x in ps]))
        return [self.score_sample(sample, [next(clips) for _ in ps]) for (sample, _), ps in zip(batch, plans)]

    # -- scoring one prompt (the one code path of `run` and `score t2v`) -------------------------------------
    def score_sample(self, sample: Sample, clips: list[GeneratedClip]) -> Record:
        """Per-video values (seed, file, CLIPSIM) and arrays (I3D features, code histograms) of one prompt."""
        p = self.protocol
        values: dict[str, Any] = {"prompt": sample.meta["prompt"], **sample.meta.get("record", {})}
        videos = [{"seed_index": c.plan.seed_index, "seed": c.plan.seed, "file": c.plan.file}
                  | ({"resized": True} if c.resized else {}) for c in clips]
        arrays: dict[str, np.ndarray] = {}
        frames = np.stack([c.frames for c in clips])
        with deterministic_kernels():
            for det in p.fvd_detectors:
                extractor = self._extractor(det)
                if extractor is not None:
                    arrays[f"i3d_{det}"] = np.asarray(extractor(frames), np.float64)
            clip = self._clip_model()
            if clip is not None:
                for v, c in zip(videos, clips):
                    v["clipsim"] = clip.clipsim(c.frames, sample.meta["prompt"])
        values["videos"] = videos
        values.update(self._code_values(clips, arrays))
        return Record(sample.id, values, arrays)

    @staticmethod
    def _code_values(clips: list[GeneratedClip], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        if any(c.codes is None for c in clips):
            return {"codebook_source": None}
        layout = None
        for j, c in enumerate(clips):
            source, levels = codes_to_levels(c.codes, c.plan.file)
            this = (source, [(lv.name, lv.codebook_size, lv.code_bits, lv.num_codes) for lv in levels])
            if layout is not None and this != layout:
                raise ValueError(f"{c.plan.file}: its codes ({this}) differ in kind or layout from those of the "
                                 f"prompt's other videos ({layout})")
            layout = this
            for k, level in enumerate(levels):
                for key, arr in level_histogram(level, 0).items():
                    arrays[f"v{j}_level{k}_{key}"] = arr
        source, levels = layout
        return {"codebook_source": source, "levels": [{"name": n, "codebook_size": s, "code_bits": b, "codes": c}
                                                      for n, s, b, c in levels]}

    def _extractor(self, det: str):
        if detector_unavailable(det):
            return None
        if det not in self._extractors:
            self._extractors[det] = feature_extractor(det, self.device)
        return self._extractors[det]

    def _clip_model(self):
        from harness.metrics.clipsim import CLIPSim, clip_unavailable

        if not self.protocol.clipsim or clip_unavailable():
            return None
        if self._clip is None:
            self._clip = CLIPSim(None, self.device)
        return self._clip

    # -- over the set ----------------------------------------------------------------------------------------
    def aggregate(self, records: list[Record]) -> dict[str, Metric]:
        n_videos = sum(len(r.values["videos"]) for r in records)
        warning = self._count_warning(n_videos)
        m = {"generated_videos": Metric(float(n_videos), len(records), None, warning=warning,
                                        variant=f"videos scored ({len(records)} prompts x up to "
                                                f"{self.protocol.seeds_per_prompt} seeds)")}
        for det in self.protocol.fvd_detectors:
            m.update(self._fvd(det, records, warning))
        m.update(self._clipsim(records))
        m.update(self._codebook(records))
        return m

    def _count_warning(self, n_videos: int) -> str | None:
        notes = []
        if self._mini:
            notes.append(f"mini split: {n_videos} generated videos on a toy data set, for testing the pipeline only; "
                         "never compare these numbers with published ones")
        if self.reference_videos is not None and n_videos != self.reference_videos:
            notes.append(f"{n_videos} generated videos where the protocol's lineage uses {self.reference_videos}: "
                         "FVD depends on the sample count, compare only numbers computed with the same count")
        elif self._expected_videos is not None and n_videos != self._expected_videos:
            notes.append(f"{n_videos} of the split's {self._expected_videos} videos (prompts x seeds) were scored")
        return "; ".join(notes) or None

    def _reference_stats(self) -> dict[str, ReferenceStats]:
        if self._reference is None:
            if self._root is None:
                raise HarnessError(f"task {self.name}: the real clips are unknown (samples() was not called)")
            from harness.cache import default_cache_root

            extractors = {d: e for d in self.protocol.fvd_detectors if (e := self._extractor(d)) is not None}
            self._reference = reference_stats(self.reference_set(self._root), extractors,
                                              ReferenceStatsCache(default_cache_root()), progress=self.progress)
        return self._reference

    def _fvd(self, det: str, records: list[Record], warning: str | None) -> dict[str, Metric]:
        key = f"fvd_{det}"
        have = [r for r in records if f"i3d_{det}" in r.arrays]
        variant = f"{DETECTORS[det].variant}; generated videos vs real clips"
        if not have:
            reason = detector_unavailable(det) or "no I3D features were computed for these samples"
            return {key: Metric(None, len(records), False, variant=variant, reason=reason, warning=warning)}
        ref = self._reference_stats()[det]
        gen = np.concatenate([r.arrays[f"i3d_{det}"] for r in have])
        clusters = [r.sample_id for r in have for _ in range(len(r.arrays[f"i3d_{det}"]))]
        res = frechet_to_reference(gen, ref.stats)
        variant += (f" ({ref.stats.n} real clips of {self.reference_description()}"
                    + (f", {len(ref.failed)} undecodable ones left out" if ref.failed else "")
                    + f"; statistics cached under key {ref.key[:16]}); weights sha256 {ref.weights_sha256}")
        if res.value is None:
            return {key: Metric(None, len(gen), False, variant=variant, reason=res.reason, warning=warning)}
        iters = self.protocol.fvd_bootstrap_iters
        ci = bootstrap_to_reference(gen, clusters, ref.stats, iters)
        warn = "; ".join(w for w in (res.warning, warning) if w) or None
        common = dict(ci_low=ci and ci[0], ci_high=ci and ci[1], warning=warn,
                      ci_method=ci and f"percentile bootstrap over prompts ({iters} replicates, real statistics "
                                       "fixed, robust route)")
        return {key: Metric(res.value, len(gen), False, variant=f"{variant}; np.cov + scipy sqrtm (StyleGAN-V)",
                            **common),
                f"{key}_eig": Metric(res.value_eig, len(gen), False,
                                     variant=f"{variant}; robust route (eigenvalues of S1^1/2 S2 S1^1/2)", **common)}

    def reference_description(self) -> str:
        return f"{self.dataset}"

    def _clipsim(self, records: list[Record]) -> dict[str, Metric]:
        if not self.protocol.clipsim:
            return {}
        from harness.metrics.clipsim import DEFAULT_CLIP, clip_unavailable

        pairs = [(r.sample_id, v["clipsim"]) for r in records for v in r.values["videos"] if "clipsim" in v]
        variant = ("raw cosine of CLIP image and text embeddings (not x100, not clipped), mean over frames, then "
                   f"over videos; {DEFAULT_CLIP}, weights sha256 {self.metric_weights().get(DEFAULT_CLIP)}; "
                   "stderr clustered by prompt")
        if not pairs:
            reason = clip_unavailable() or "CLIPSIM was not computed for these samples"
            return {"clipsim": Metric(None, len(records), True, variant=variant, reason=reason)}
        return {"clipsim": mean_metric([v for _, v in pairs], True, variant, clusters=[s for s, _ in pairs])}

    def _codebook(self, records: list[Record]) -> dict[str, Metric]:
        with_codes = [r for r in records if r.values.get("codebook_source")]
        if not with_codes:
            reason = ("the adapter returned no tokens and cannot encode (no codes files in the folder, and no --model "
                      "to re-encode with)")
            return {"codebook": Metric(None, len(records), None, reason=reason)}
        sources = sorted({r.values["codebook_source"] for r in with_codes})
        levels = with_codes[0].values["levels"]
        if any(r.values["levels"] != levels for r in with_codes) or len(sources) > 1:
            raise HarnessError("the generated videos' codes differ in source or layout between prompts")
        what = {"sampled": "tokens the adapter sampled", "re-encoded": "generated videos re-encoded by the adapter"}
        n_videos = sum(len(r.values["videos"]) for r in with_codes)
        out = {"tokens_per_video": Metric(float(sum(lv["codes"] for lv in levels)), n_videos, None,
                                          variant=f"codes per video summed over levels ({what[sources[0]]})")}
        for k, lv in enumerate(levels):
            hists = [{key.split("_", 2)[2]: a for key, a in r.arrays.items() if key.startswith(f"v{j}_level{k}_")}
                     for r in with_codes for j in range(len(r.values["videos"]))]
            stats = usage(hists, lv["codebook_size"])
            for key, value in stats.items():
                better = True if key in ("used_fraction", "entropy_ratio", "perplexity", "bit_entropy_mean") else None
                out[f"codebook/{lv['name']}/{key}"] = Metric(
                    value if math.isfinite(value) else None, n_videos, better,
                    variant=f"over all codes of the {what[sources[0]]}; codebook {lv['codebook_size']}")
        return out
