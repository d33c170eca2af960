"""Reconstruction tasks: encode and decode a clip, then measure fidelity, bits and codebook usage.

The protocol fixes everything that changes the numbers: split, frame count, frame sampling, resize rule and crop.
Fidelity is measured on uint8-rounded frames held in memory (never on re-encoded files, which would add codec loss
to both sides).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from harness.errors import HarnessError
from harness.metrics.codebook import level_histogram, usage
from harness.metrics.recon_features import FeatureMetrics
from harness.metrics.pixel import PSNR_CAP_DB, pooled_psnr
from harness.metrics.pixel import video_fidelity
from harness.stats import bootstrap_ci, mean_metric
from harness.task import Metric, Record, Sample, Task
from harness.video import center_crop, probe, read_frames, resize_short_side, sample_indices, to_model_input, \
    to_uint8_frames
from models.base import RECONSTRUCT, ModelAdapter

RGB_BITS_PER_PIXEL = 24.0


class ModelOutputError(HarnessError):
    """An adapter answered with something unusable (wrong shape, NaN)."""


@dataclass(frozen=True)
class ReconProtocol:
    split: str = "test"
    num_frames: int = 17
    sampling: str = "center"  # see harness.video.sample_indices
    stride: int = 1
    resize: int = 128  # short side, bilinear with antialiasing (torchvision Resize semantics)
    crop: int = 128  # centre crop, square
    ssim_variant: str = "gaussian11"
    bootstrap_iters: int = 1000
    lpips_nets: tuple[str, ...] = ("alex", "vgg")  # LPIPS backbones, reported as lpips_<net>
    fvd_detectors: tuple[str, ...] = ("styleganv", "videogpt")  # I3D lineages, reported as rfvd_<detector>
    fvd_bootstrap_iters: int = 100  # percentile bootstrap over videos (each replicate is a 400x400 eigenproblem)


class ReconstructionTask(Task):
    """Base of clip reconstruction tasks; a subclass supplies `samples` for its data set's layout."""

    family: ClassVar[str] = "reconstruction"
    requires: ClassVar[frozenset[str]] = frozenset({RECONSTRUCT})
    default_batch_size: ClassVar[int] = 4
    headline: ClassVar[tuple[str, ...]] = ("psnr_frame", "psnr_video", "ssim", "bpp", "compression_ratio")
    Protocol: ClassVar[type] = ReconProtocol

    def __init__(self, **overrides: Any):
        for key in ("lpips_nets", "fvd_detectors"):  # --task-arg gives "alex,vgg" strings or YAML lists
            value = overrides.get(key)
            if isinstance(value, str):
                overrides[key] = tuple(x.strip() for x in value.split(",") if x.strip())
            elif isinstance(value, list):
                overrides[key] = tuple(value)
        super().__init__(**overrides)
        FeatureMetrics.validate(self.protocol.lpips_nets, self.protocol.fvd_detectors)
        self._features: FeatureMetrics | None = None

    @property
    def features(self) -> FeatureMetrics:
        """The weight-based metrics (LPIPS, I3D), resolved once; absent weights cost nothing afterwards."""
        if self._features is None:
            self._features = FeatureMetrics(self.protocol.lpips_nets, self.protocol.fvd_detectors)
        return self._features

    def protocol_dict(self) -> dict[str, Any]:
        """The protocol plus the sha256 of the metric weights found (None: absent), so results and cached samples
        computed with different (or without) metric weights never mix."""
        return {**super().protocol_dict(), "metric_weights": self.features.weight_hashes()}

    def load(self, sample: Sample) -> dict[str, Any]:
        p = self.protocol
        info = probe(sample.path)
        idx = sample_indices(info.num_frames, p.num_frames, p.sampling, stride=p.stride)
        frames = read_frames(sample.path, idx, info=info)
        return {"frames": self.transform(frames), "indices": idx.tolist(),
                "padded": bool(info.num_frames < (p.num_frames - 1) * p.stride + 1)}

    def transform(self, frames: np.ndarray) -> torch.Tensor:
        p = self.protocol
        x = resize_short_side(frames, p.resize) if p.resize else torch.as_tensor(frames)
        return center_crop(x, p.crop) if p.crop else x

    pipelined: ClassVar[bool] = True

    def evaluate(self, model: ModelAdapter, batch: list[tuple[Sample, Any]], seeds: list[int]) -> list[Record]:
        return self.score(batch, self.predict(model, batch, seeds))

    def predict(self, model: ModelAdapter, batch: list[tuple[Sample, Any]], seeds: list[int]) -> dict[str, Any]:
        frames = torch.stack([inputs["frames"] for _, inputs in batch])  # (B, T, H, W, 3) uint8
        video = to_model_input(frames).to(model.device)
        tokens, recon = model.reconstruct(video)
        if tuple(recon.shape) != tuple(video.shape):
            raise ModelOutputError(f"reconstruction has shape {tuple(recon.shape)}, input {tuple(video.shape)}")
        if not torch.isfinite(recon).all():
            raise ModelOutputError("reconstruction contains NaN or infinite values")
        return {"frames": frames, "out": to_uint8_frames(recon.cpu()), "tokens": tokens, "device": model.device}

    def score(self, batch: list[tuple[Sample, Any]], prediction: dict[str, Any]) -> list[Record]:
        frames, out, tokens, device = (prediction[k] for k in ("frames", "out", "tokens", "device"))
        bpp = tokens.bits_per_pixel()
        extra = self.features.video_values(frames, out, device)
        records = []
        for i, (sample, inputs) in enumerate(batch):
            fid = video_fidelity(frames[i], out[i], self.protocol.ssim_variant)
            values = {**fid.as_dict(), "frame_indices": inputs["indices"], "padded": inputs["padded"],
                      "bpp": None if bpp is None else float(bpp[i]),
                      "latent_elements": tokens.latent_elements,
                      "levels": [{"name": lv.name, "codebook_size": lv.codebook_size, "code_bits": lv.code_bits,
                                  "codes": lv.num_codes} for lv in tokens.levels]}
            arrays = {}
            values.update(extra[i])
            for j, level in enumerate(tokens.levels):
                for key, arr in level_histogram(level, i).items():
                    arrays[f"level{j}_{key}"] = arr
            records.append(Record(sample.id, values, arrays))
        for name, (real, fake) in self.features.clip_features(frames, out, device).items():
            for i, record in enumerate(records):
                record.arrays[f"{name}_real"], record.arrays[f"{name}_fake"] = real[i], fake[i]
        return records

    def aggregate(self, records: list[Record]) -> dict[str, Metric]:
        v = lambda key: [r.values[key] for r in records]  # noqa: E731
        iters = self.protocol.bootstrap_iters
        cap = f"cap {PSNR_CAP_DB:g} dB"
        m: dict[str, Metric] = {
            "psnr_frame": mean_metric(v("psnr_frame"), True, f"mean over videos of mean per-frame PSNR; uint8 RGB, "
                                                            f"range 255; {cap}", "dB"),
            "psnr_video": mean_metric(v("psnr_video"), True, f"mean over videos of per-video PSNR (MSE pooled over "
                                                            f"the video); uint8 RGB, range 255; {cap}", "dB"),
            "ssim": mean_metric(v("ssim"), True, f"{self.protocol.ssim_variant} (skimage semantics), per channel, "
                                                 "mean over frames then videos"),
        }
        sse, vals = np.asarray(v("sse")), np.asarray(v("values"))
        ci = bootstrap_ci(lambda idx: pooled_psnr(sse[idx].sum(), int(vals[idx].sum())), len(records), iters)
        m["psnr_pooled"] = Metric(pooled_psnr(sse.sum(), int(vals.sum())), len(records), True,
                                  ci_low=ci and ci[0], ci_high=ci and ci[1], ci_method=ci and "percentile bootstrap",
                                  variant=f"PSNR of the MSE pooled over the whole set (torchmetrics default); {cap}",
                                  unit="dB")
        identical = sum(v("identical_frames"))
        m["identical_frames"] = Metric(float(identical), len(records), None, variant="frames reconstructed exactly "
                                       "(their PSNR is the cap)")
        bpp = [b for b in v("bpp") if b is not None]
        if bpp:
            m["bpp"] = mean_metric(bpp, False, "bits per pixel of the clip's representation", "bit/px")
            m["compression_ratio"] = Metric(RGB_BITS_PER_PIXEL / float(np.mean(bpp)), len(bpp), True,
                                            variant="24-bit RGB bits / mean bits per pixel")
        else:
            elements = records[0].values.get("latent_elements")
            m["bpp"] = Metric(None, len(records), False, reason="continuous latent: no bit count"
                              + (f" ({elements} latent values per clip)" if elements else ""))
            if elements:
                m["latent_elements"] = mean_metric([r.values.get("latent_elements") or 0 for r in records], None,
                                                   "continuous latent values per clip (the size of its code)")
        m.update(self.features.aggregate(records, self.protocol.fvd_bootstrap_iters))
        m.update(self._codebook_metrics(records))
        return m

    def _codebook_metrics(self, records: list[Record]) -> dict[str, Metric]:
        levels = records[0].values.get("levels") or []
        out: dict[str, Metric] = {}
        if levels:
            out["tokens_per_clip"] = Metric(float(sum(lv["codes"] for lv in levels)), len(records), None,
                                            variant="codes per clip summed over levels")
        for j, lv in enumerate(levels):
            hists = [{k.split("_", 1)[1]: a for k, a in r.arrays.items() if k.startswith(f"level{j}_")}
                     for r in records]
            stats = usage(hists, lv["codebook_size"])
            for key, value in stats.items():
                better = True if key in ("used_fraction", "entropy_ratio", "perplexity", "bit_entropy_mean") else None
                out[f"codebook/{lv['name']}/{key}"] = Metric(
                    value if math.isfinite(value) else None, len(records), better,
                    variant=f"over all codes of the evaluated set; codebook {lv['codebook_size']}")
        return out
