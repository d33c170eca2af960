"""Generated videos on disk: the writer, the file names, the token files and the manifest of a generation folder.

A generation task scores a generated video as the frames its mp4 file decodes to, whether the video was generated in
the same process (`run`) or read from a folder (`generate` + `score t2v`, or any external generator): the in-process
run encodes each video with the protocol's writer and decodes it back exactly as `score t2v` decodes a file. With the
default `lossless` writer (H.264 RGB, qp 0) that round trip returns the generated uint8 frames bit for bit; with a
lossy writer both paths see the same codec loss. Either way the two give the same numbers.

Folder layout (see docs/generation.md):
    <sample_id>-<seed_index>.mp4          one video per (prompt, seed); the id made safe by harness.results.safe_name
    <sample_id>-<seed_index>.codes.npz    optional: the tokens behind it (sampled by the prior, or re-encoded)
    manifest.json                         task, protocol, model, and one entry per video
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import DataError
from harness.io import read_json, safe_join
from harness.results import safe_name
from models.base import CodeLevel, Tokens

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "pyratok-bench/generated-videos"
MANIFEST_VERSION = 1
FILE_PATTERN = re.compile(r"^(?P<stem>.+)-(?P<index>\d+)\.mp4$")
CODES_SUFFIX = ".codes.npz"
CODEBOOK_SOURCES = ("sampled", "re-encoded")


@dataclass(frozen=True)
class WriterSpec:
    """How generated frames become an mp4: libx264 with one thread and a bit-exact muxer, so the same frames always
    give the same bytes."""

    codec: str
    pix_fmt: str
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"codec": self.codec, "pix_fmt": self.pix_fmt, "options": dict(self.options), "container": "mp4",
                "muxer_options": {"fflags": "+bitexact"}}


WRITERS: dict[str, WriterSpec] = {
    # H.264 in RGB at qp 0: mathematically lossless, the decoded frames are the generated uint8 frames exactly
    "lossless": WriterSpec("libx264rgb", "rgb24", {"qp": 0, "preset": "veryfast", "threads": 1}),
    # what most generation code saves: YUV 4:2:0 at CRF 18 (H and W must be even)
    "h264-crf18": WriterSpec("libx264", "yuv420p", {"crf": 18, "preset": "medium", "threads": 1}),
}


def writer_spec(name: str) -> WriterSpec:
    if name not in WRITERS:
        raise ValueError(f"unknown video writer {name!r} (known: {', '.join(WRITERS)})")
    return WRITERS[name]


# ---------------------------------------------------------------------------------------------------------------
# Frames <-> mp4
# ---------------------------------------------------------------------------------------------------------------
def encode_mp4(frames: np.ndarray, fps: float, writer: str) -> bytes:
    """The mp4 bytes of uint8 (T, H, W, 3) frames under the named writer."""
    from harness.video import write_video

    spec = writer_spec(writer)
    with tempfile.TemporaryDirectory(prefix="pyratok-gen-") as tmp:
        path = Path(tmp) / "video.mp4"
        write_video(path, np.ascontiguousarray(frames), fps, codec=spec.codec, pix_fmt=spec.pix_fmt,
                    options=spec.options, container_options={"fflags": "+bitexact"})
        return path.read_bytes()


def decode_generated(path: str | Path, num_frames: int, height: int, width: int) -> tuple[np.ndarray, bool]:
    """The frames a generated video is scored on: its first `num_frames` frames, decoded with PyAV (sequential and
    exact for every codec), brought to height x width by the real clips' rule (resize to cover, centre crop) when
    the file has another size. Returns (uint8 (T, H, W, 3), whether it was resized)."""
    from harness.video import read_frames

    frames = read_frames(path, np.arange(num_frames), backend="pyav")
    if frames.shape[1:3] == (height, width):
        return frames, False
    return cover_crop(frames, height, width), True


def decode_mp4_bytes(data: bytes, num_frames: int, height: int, width: int) -> tuple[np.ndarray, bool]:
    with tempfile.TemporaryDirectory(prefix="pyratok-gen-") as tmp:
        path = Path(tmp) / "video.mp4"
        path.write_bytes(data)
        return decode_generated(path, num_frames, height, width)


def cover_size(h: int, w: int, height: int, width: int) -> tuple[int, int]:
    """The smallest size with the aspect of (h, w) that covers height x width (torchvision's truncation of the
    other side; a square target is torchvision Resize(height))."""
    if height * w >= width * h:  # the height is the binding side
        return height, max(width, int(w * height / h))
    return max(height, int(h * width / w)), width


def cover_crop(frames, height: int, width: int) -> np.ndarray:
    """Bilinear resize (antialiased) to cover height x width, then a centre crop: uint8 (T, height, width, 3)."""
    from harness.video import center_crop, resize

    h, w = frames.shape[1:3]
    x = resize(frames, *cover_size(h, w, height, width))
    return np.ascontiguousarray(center_crop(x, height, width).numpy())


# ---------------------------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------------------------
def video_file_name(sample_id: str, seed_index: int) -> str:
    return f"{safe_name(sample_id)}-{int(seed_index)}.mp4"


def codes_file_name(video_file: str) -> str:
    return video_file[:-len(".mp4")] + CODES_SUFFIX


def stems_to_ids(sample_ids: list[str]) -> dict[str, str]:
    """safe file stem -> sample id, refusing two ids that would share a file name."""
    out: dict[str, str] = {}
    for sid in sample_ids:
        stem = safe_name(sid)
        if stem in out and out[stem] != sid:
            raise DataError(stem, f"sample ids {out[stem]!r} and {sid!r} map to the same file name")
        out[stem] = sid
    return out


# ---------------------------------------------------------------------------------------------------------------
# Token files
# ---------------------------------------------------------------------------------------------------------------
def tokens_to_codes(tokens: Tokens, i: int, source: str) -> dict[str, np.ndarray]:
    """The codes of item i of a batch as the arrays of a .codes.npz (self-describing; no batch axis)."""
    if source not in CODEBOOK_SOURCES:
        raise ValueError(f"codebook source {source!r} is not one of {CODEBOOK_SOURCES}")
    out: dict[str, np.ndarray] = {"source": np.array(source), "levels": np.array(len(tokens.levels))}
    for j, level in enumerate(tokens.levels):
        out[f"level{j}_name"] = np.array(level.name)
        out[f"level{j}_codebook_size"] = np.array(int(level.codebook_size))
        out[f"level{j}_bit_order"] = np.array(level.bit_order)
        if level.bits is not None:
            out[f"level{j}_bits"] = level.bits[i].detach().cpu().numpy().astype(np.uint8)
        else:
            out[f"level{j}_indices"] = level.indices[i].detach().cpu().numpy().astype(np.int64)
    return out


def codes_to_levels(codes: dict[str, np.ndarray], where: str = "codes") -> tuple[str, list[CodeLevel]]:
    """(source, levels with a batch of one) from the arrays of a .codes.npz; DataError naming `where` if malformed."""
    try:
        source = str(codes["source"])
        levels = []
        for j in range(int(codes["levels"])):
            kw: dict[str, Any] = {"name": str(codes[f"level{j}_name"]), "bit_order": str(codes[f"level{j}_bit_order"])}
            if f"level{j}_bits" in codes:
                bits = np.asarray(codes[f"level{j}_bits"])
                if bits.ndim < 2 or not np.isin(bits, (0, 1)).all():
                    raise ValueError(f"level{j}_bits must hold 0/1 values with the bits on the last axis")
                kw["bits"] = torch.from_numpy(bits.astype(np.uint8))[None]
            else:
                idx = np.asarray(codes[f"level{j}_indices"])
                size = int(codes[f"level{j}_codebook_size"])
                if idx.size and (idx.min() < 0 or idx.max() >= size):
                    raise ValueError(f"level{j}_indices fall outside the codebook of {size}")
                kw["indices"], kw["codebook_size"] = torch.from_numpy(idx.astype(np.int64))[None], size
            levels.append(CodeLevel(**kw))
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(where, f"is not a valid codes file ({type(exc).__name__}: {exc})") from exc
    if source not in CODEBOOK_SOURCES:
        raise DataError(where, f"names the codebook source {source!r}, not one of {CODEBOOK_SOURCES}")
    return source, levels


def write_codes(path: Path, codes: dict[str, np.ndarray]) -> None:
    import io

    from harness.io import write_bytes

    buf = io.BytesIO()
    np.savez(buf, **codes)
    write_bytes(path, buf.getvalue())


def read_codes(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(str(path), f"cannot be read as a codes file ({exc})") from exc


# ---------------------------------------------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoEntry:
    """One generated video of a folder."""

    sample_id: str
    seed_index: int
    file: str
    prompt: str | None = None
    seed: int | None = None
    codes: str | None = None


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest.json (None when there is none), with its structure checked."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise DataError(str(path), f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise DataError(str(path), 'expected an object with a "videos" list')
    if data.get("format", MANIFEST_FORMAT) != MANIFEST_FORMAT:
        raise DataError(str(path), f"has format {data.get('format')!r}, not {MANIFEST_FORMAT!r}")
    if int(data.get("format_version", MANIFEST_VERSION)) > MANIFEST_VERSION:
        raise DataError(str(path), f"has format_version {data['format_version']}; this harness reads up to "
                                   f"{MANIFEST_VERSION}")
    return data


def manifest_entries(folder: Path, manifest: dict[str, Any]) -> list[VideoEntry]:
    """The manifest's videos; files must stay inside the folder and each (sample, seed index) appear once."""
    path = Path(folder) / MANIFEST
    entries, seen = [], set()
    for i, v in enumerate(manifest["videos"]):
        where = f"{path}: videos[{i}]"
        try:
            sid, file = str(v["sample_id"]), str(v["file"])
            match = FILE_PATTERN.match(Path(file).name)
            index = int(v["seed_index"]) if "seed_index" in v else int(match["index"]) if match else None
            if index is None:
                raise ValueError(f"file {file!r} is not named <sample_id>-<seed_index>.mp4 and has no seed_index")
            safe_join(folder, file)
            if v.get("codes"):
                safe_join(folder, str(v["codes"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(where, f"is not a video entry ({type(exc).__name__}: {exc})") from exc
        if (sid, index) in seen:
            raise DataError(where, f"repeats sample {sid!r} seed index {index}")
        seen.add((sid, index))
        seed = v.get("seed")
        entries.append(VideoEntry(sid, index, file, v.get("prompt"), None if seed is None else int(seed),
                                  v.get("codes") or None))
    return entries


def scan_folder(folder: Path, sample_ids: list[str]) -> tuple[list[VideoEntry], list[str]]:
    """Entries of a folder without a manifest, from files named <sample_id>-<seed_index>.mp4 (ids made safe), and
    the names of .mp4 files that match no sample of the task."""
    by_stem = stems_to_ids(sample_ids)
    entries, unknown = [], []
    for p in sorted(Path(folder).glob("*.mp4")):
        match = FILE_PATTERN.match(p.name)
        sid = by_stem.get(match["stem"]) if match else None
        if sid is None:
            unknown.append(p.name)
            continue
        codes = codes_file_name(p.name)
        entries.append(VideoEntry(sid, int(match["index"]), p.name,
                                  codes=codes if (p.parent / codes).exists() else None))
    return entries, unknown
