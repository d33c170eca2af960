"""Classical codecs through PyAV, rate-matched to a target bits per pixel: the compression anchor of the field.

Each clip is encoded as one elementary stream (no container, so only the codec's own bytes are counted; parameter
sets travel in-band and are counted too; informational SEI messages, which x264 fills with its option string, are
dropped). The rate is matched by searching the codec's constant-quality scale (CRF)
for the best quality whose stream fits the bit budget; a clip that does not fit even at the coarsest setting is
encoded there and its true (larger) size is reported. By default the budget is that of a 16-bit-per-token 4x8x8
tokenizer on the same clip, e.g. 16 x 5x16x16 bits for 17x128x128.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from harness.video import to_uint8_frames
from models.base import RECONSTRUCT, ModelAdapter, ModelMetadata, Tokens


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream, each with its start code."""
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        s = i - 1 if i > 0 and data[i - 1] == 0 else i
        starts.append((s, i + 3))
        i = data.find(b"\x00\x00\x01", i + 3)
    return [data[s:(starts[k + 1][0] if k + 1 < len(starts) else len(data))] for k, (s, _) in enumerate(starts)]


def strip_sei(data: bytes, codec: str) -> bytes:
    """Drop SEI NAL units: informational only (x264 writes its whole option string there), never needed to decode,
    so counting them would charge the codec for a banner rather than for the video."""
    out = []
    for nal in split_annexb(data):
        header = nal.lstrip(b"\x00")[1:]  # skip the 0x01 of the start code
        if not header:
            continue
        if codec == "h264" and header[0] & 0x1F == 6:
            continue
        if codec == "hevc" and (header[0] >> 1) & 0x3F in (39, 40):
            continue
        out.append(nal)
    return b"".join(out) if out else data


def tokenizer_bits(num_frames: int, height: int, width: int, code_bits: int = 16,
                   factors: tuple[int, int, int] = (4, 8, 8)) -> int:
    """Bits of a causal tokenizer's codes: (1 + ceil((T-1)/t)) * ceil(H/h) * ceil(W/w) tokens of `code_bits`."""
    t, h, w = factors
    tokens = (1 + math.ceil((num_frames - 1) / t)) * math.ceil(height / h) * math.ceil(width / w)
    return tokens * code_bits


class CodecAdapter(ModelAdapter):
    """Encode/decode with a PyAV encoder at a matched rate. Subclasses name the encoder, decoder and CRF range."""

    capabilities = frozenset({RECONSTRUCT})
    encoder: str = ""
    decoder: str = ""
    crf_range: tuple[int, int] = (0, 51)  # best quality, coarsest
    extra_options: dict[str, str] = {}
    annexb: bool = False  # an Annex-B stream (H.264, HEVC) whose SEI units are dropped before counting

    def __init__(self, device="cpu", bpp: float | None = None, match_bits: int = 16, match_factors: str = "4x8x8",
                 preset: str = "medium", fps: float = 25.0, **args):
        super().__init__(device, bpp=bpp, match_bits=match_bits, match_factors=match_factors, preset=preset,
                         fps=fps, **args)
        self.target_bpp = None if bpp is None else float(bpp)
        self.match_bits = int(match_bits)
        self.factors = tuple(int(v) for v in str(match_factors).lower().split("x"))
        self.preset, self.fps = str(preset), float(fps)

    def budget_bits(self, t: int, h: int, w: int) -> float:
        if self.target_bpp is not None:
            return self.target_bpp * t * h * w
        return float(tokenizer_bits(t, h, w, self.match_bits, self.factors))

    # -- one clip --------------------------------------------------------------------------------------------
    def _options(self, crf: int) -> dict[str, str]:
        return {"crf": str(crf), "preset": self.preset, "threads": "1", **self.extra_options}

    def _encode(self, frames: np.ndarray, crf: int) -> list[bytes]:
        import av

        t, h, w, _ = frames.shape
        enc = av.CodecContext.create(self.encoder, "w")
        enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
        enc.time_base = Fraction(1, 1000)
        enc.framerate = Fraction(self.fps).limit_denominator(1001)
        enc.gop_size = t
        enc.options = self._options(crf)
        packets = []
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            frame.pts = int(round(i * 1000 / self.fps))
            packets += [bytes(p) for p in enc.encode(frame)]
        packets += [bytes(p) for p in enc.encode(None)]
        if self.annexb:
            packets = [strip_sei(p, self.decoder) for p in packets]
        return packets

    def _decode(self, packets: list[bytes], shape: tuple[int, int, int]) -> np.ndarray:
        import av

        dec = av.CodecContext.create(self.decoder, "r")
        out = []
        for data in packets:
            out += dec.decode(av.Packet(data))
        out += dec.decode(None)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in out])
        if frames.shape[:3] != shape:
            raise RuntimeError(f"{self.decoder} returned {frames.shape[:3]} frames, expected {shape}")
        return frames

    def _rate_matched(self, frames: np.ndarray) -> tuple[list[bytes], int]:
        """Smallest CRF (best quality) whose stream fits the budget, by bisection over the integer CRF scale."""
        t, h, w, _ = frames.shape
        budget = self.budget_bits(t, h, w)
        lo, hi = self.crf_range
        best = None
        while lo <= hi:
            mid = (lo + hi) // 2
            packets = self._encode(frames, mid)
            if 8 * sum(map(len, packets)) <= budget:
                best, hi = (packets, mid), mid - 1
            else:
                lo = mid + 1
        if best is None:  # does not fit even at the coarsest setting: report its true size
            best = (self._encode(frames, self.crf_range[1]), self.crf_range[1])
        return best

    # -- adapter API -----------------------------------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> Tokens:
        frames = to_uint8_frames(video.cpu()).numpy()  # (B, T, H, W, 3)
        b, t, h, w, _ = frames.shape
        if h % 2 or w % 2:
            raise ValueError(f"{self.encoder} with yuv420p needs even frame sizes, got {h}x{w}")
        streams, crfs = zip(*(self._rate_matched(f) for f in frames))
        bits = torch.tensor([8.0 * sum(map(len, s)) for s in streams], dtype=torch.float64)
        return Tokens((t, h, w), bits=bits, payload={"streams": list(streams), "crf": list(crfs)})

    def decode(self, tokens: Tokens) -> torch.Tensor:
        t, h, w = tokens.video_shape
        frames = np.stack([self._decode(s, (t, h, w)) for s in tokens.payload["streams"]])
        x = torch.from_numpy(frames).float().div_(127.5).sub_(1)
        return x.permute(0, 4, 1, 2, 3).contiguous().to(self.device)


class H264Adapter(CodecAdapter):
    encoder, decoder = "libx264", "h264"
    crf_range = (0, 51)
    annexb = True
    metadata = ModelMetadata("H.264 (libx264), rate-matched", family="codec", discrete=True,
                             source="FFmpeg libx264 via PyAV", license="GPL-2.0 (x264)",
                             notes="CRF searched per clip to fit the bit budget; one GOP per clip")
