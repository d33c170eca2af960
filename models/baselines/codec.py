"""Classical codecs through PyAV, rate-matched to a target bits per pixel: the compression anchor of the field.

H.264 (libx264), HEVC (libx265) and AV1 (SVT-AV1, decoded with dav1d). Each clip is encoded as one elementary stream
with one GOP (no container, so only the codec's own bytes are counted; parameter sets / sequence headers travel
in-band and are counted too). Units that carry no picture information are dropped before counting: SEI messages of
H.264/HEVC (x264 and x265 fill one with their version and option string) and AV1's temporal delimiters, metadata and
padding OBUs; the stripped stream is what is decoded, so it provably suffices.

The rate is matched by searching the codec's constant-quality scale (CRF: 0-51 for x264/x265, 1-63 for SVT-AV1) for
the best quality whose stream fits the bit budget; a clip that does not fit even at the coarsest setting is encoded
there and its true (larger) size is reported. By default the budget is that of a 16-bit-per-token 4x8x8 tokenizer on
the same clip, e.g. 16 x 5x16x16 bits for 17x128x128 (`bpp=` or `match_bits`/`match_factors` change it).

4:2:0 chroma needs even frame sizes, and encoders have a minimum size (x265: 64 pixels a side here, see HEVCAdapter;
SVT-AV1: 4): smaller or odd frames are padded on the bottom/right by replicating the edge pixels, encoded, decoded
and cropped back. The bits of the padded stream are charged to the original pixels.
"""
from __future__ import annotations

import math
import os
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


def leb128(data: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the unsigned LEB128 number at `pos` (AV1 OBU sizes)."""
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated LEB128 number")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


AV1_DROPPED_OBUS = {2: "temporal delimiter", 5: "metadata", 15: "padding"}


def strip_av1(data: bytes) -> bytes:
    """Drop the OBUs of a low-overhead AV1 temporal unit that carry no picture information: temporal delimiters
    (the packet already delimits the unit), metadata and padding. Every OBU must carry its size field."""
    out, pos = [], 0
    while pos < len(data):
        header = data[pos]
        obu_type, has_extension, has_size = (header >> 3) & 0xF, (header >> 2) & 1, (header >> 1) & 1
        if not has_size:
            raise ValueError("AV1 OBU without a size field; cannot split the temporal unit")
        size, start = leb128(data, pos + 1 + has_extension)
        end = start + size
        if end > len(data):
            raise ValueError("AV1 OBU runs past the end of its packet")
        if obu_type not in AV1_DROPPED_OBUS:
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


def tokenizer_bits(num_frames: int, height: int, width: int, code_bits: int = 16,
                   factors: tuple[int, int, int] = (4, 8, 8)) -> int:
    """Bits of a causal tokenizer's codes: (1 + ceil((T-1)/t)) * ceil(H/h) * ceil(W/w) tokens of `code_bits`."""
    t, h, w = factors
    tokens = (1 + math.ceil((num_frames - 1) / t)) * math.ceil(height / h) * math.ceil(width / w)
    return tokens * code_bits


class CodecAdapter(ModelAdapter):
    """Encode/decode with a PyAV encoder at a matched rate. Subclasses name the encoder, decoders, CRF range, preset
    default, minimum frame size, their options and how their stream is cleaned before counting."""

    capabilities = frozenset({RECONSTRUCT})
    encoder: str = ""
    decoders: tuple[str, ...] = ()  # the first one FFmpeg provides is used
    crf_range: tuple[int, int] = (0, 51)  # best quality, coarsest
    default_preset: str = "medium"
    min_size: int = 2  # smallest side the encoder accepts (4:2:0 also needs even sides)

    def __init__(self, device="cpu", bpp: float | None = None, match_bits: int = 16, match_factors: str = "4x8x8",
                 preset: str | int | None = None, fps: float = 25.0, **args):
        preset = str(self.default_preset if preset is None else preset)
        super().__init__(device, bpp=bpp, match_bits=match_bits, match_factors=match_factors, preset=preset,
                         fps=fps, **args)
        self.target_bpp = None if bpp is None else float(bpp)
        self.match_bits = int(match_bits)
        self.factors = tuple(int(v) for v in str(match_factors).lower().split("x"))
        self.preset, self.fps = preset, float(fps)
        self.decoder = self._available_decoder()

    def _available_decoder(self) -> str:
        import av

        for name in self.decoders:
            if name in av.codecs_available:
                return name
        raise RuntimeError(f"no decoder for {self.encoder}: this PyAV/FFmpeg build has none of "
                           f"{', '.join(self.decoders)}")

    def budget_bits(self, t: int, h: int, w: int) -> float:
        if self.target_bpp is not None:
            return self.target_bpp * t * h * w
        return float(tokenizer_bits(t, h, w, self.match_bits, self.factors))

    def coded_size(self, h: int, w: int) -> tuple[int, int]:
        """The frame size given to the encoder: even, and at least `min_size`, by bottom/right edge padding."""
        grow = lambda n: max(self.min_size, n + n % 2)  # noqa: E731
        return grow(h), grow(w)

    # -- per codec -------------------------------------------------------------------------------------------
    def _options(self, crf: int) -> dict[str, str]:
        return {"crf": str(crf), "preset": self.preset, "threads": "1"}

    def _clean(self, packet: bytes) -> bytes:
        """The packet without the units that are not counted (see the module docstring)."""
        return packet

    # -- one clip --------------------------------------------------------------------------------------------
    def _encode(self, frames: np.ndarray, crf: int) -> list[bytes]:
        from harness.memory import zeroed_allocations

        with zeroed_allocations():  # the encoders read some buffers before writing them: keep the stream reproducible
            return self._encode_frames(frames, crf)

    def _encode_frames(self, frames: np.ndarray, crf: int) -> list[bytes]:
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
        return [self._clean(p) for p in packets]

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

    def _rate_matched(self, frames: np.ndarray, budget: float) -> tuple[list[bytes], int]:
        """Smallest CRF (best quality) whose stream fits the budget, by bisection over the integer CRF scale."""
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
        ch, cw = self.coded_size(h, w)
        if (ch, cw) != (h, w):
            frames = np.pad(frames, ((0, 0), (0, 0), (0, ch - h), (0, cw - w), (0, 0)), mode="edge")
        budget = self.budget_bits(t, h, w)  # the budget of the input's pixels, not the padded ones
        streams, crfs = zip(*(self._rate_matched(f, budget) for f in frames))
        bits = torch.tensor([8.0 * sum(map(len, s)) for s in streams], dtype=torch.float64)
        return Tokens((t, h, w), bits=bits, payload={"streams": list(streams), "crf": list(crfs),
                                                     "coded_size": (ch, cw)})

    def decode(self, tokens: Tokens) -> torch.Tensor:
        t, h, w = tokens.video_shape
        ch, cw = tokens.payload.get("coded_size", (h, w))
        frames = np.stack([self._decode(s, (t, ch, cw)) for s in tokens.payload["streams"]])[:, :, :h, :w]
        x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(127.5).sub_(1)
        return x.permute(0, 4, 1, 2, 3).contiguous().to(self.device)


class H264Adapter(CodecAdapter):
    encoder, decoders = "libx264", ("h264",)
    crf_range = (0, 51)
    metadata = ModelMetadata("H.264 (libx264), rate-matched", family="codec", discrete=True,
                             source="FFmpeg libx264 via PyAV", license="GPL-2.0 (x264)",
                             notes="CRF searched per clip to fit the bit budget; one GOP per clip")

    def _clean(self, packet: bytes) -> bytes:
        return strip_sei(packet, "h264")


class HEVCAdapter(CodecAdapter):
    encoder, decoders = "libx265", ("hevc",)
    crf_range = (0, 51)
    # x265 rejects sides under 16 pixels, and (libx265 as shipped with PyAV 18) corrupts its heap after a few encodes
    # of frames smaller than its 64-pixel CTU; such frames are padded to 64 like any other size fix
    min_size = 64
    metadata = ModelMetadata("HEVC (libx265), rate-matched", family="codec", discrete=True,
                             source="FFmpeg libx265 via PyAV", license="GPL-2.0 (x265)",
                             notes="CRF searched per clip to fit the bit budget; one GOP per clip; SEI dropped")

    def _options(self, crf: int) -> dict[str, str]:
        # single-threaded like x264 (pools=none, one frame thread): deterministic, and x265's log silenced
        return {"crf": str(crf), "preset": self.preset,
                "x265-params": "log-level=none:pools=none:frame-threads=1"}

    def _clean(self, packet: bytes) -> bytes:
        return strip_sei(packet, "hevc")


class AV1Adapter(CodecAdapter):
    encoder, decoders = "libsvtav1", ("libdav1d", "libaom-av1")
    crf_range = (1, 63)  # SVT-AV1's CRF scale; 0 means "not set" in FFmpeg's libsvtav1 wrapper
    default_preset = "8"  # SVT-AV1 presets run 0 (slowest, best) to 13
    min_size = 4
    metadata = ModelMetadata("AV1 (SVT-AV1), rate-matched", family="codec", discrete=True,
                             source="FFmpeg libsvtav1 via PyAV, decoded with dav1d",
                             license="BSD-3-Clause-Clear + AOMedia Patent License 1.0 (SVT-AV1); BSD-2-Clause (dav1d)",
                             notes="CRF searched per clip to fit the bit budget; one GOP per clip; temporal "
                                   "delimiters dropped")

    def __init__(self, device="cpu", **args):
        import av

        if self.encoder not in av.codecs_available:
            raise RuntimeError("the av1 adapter needs the libsvtav1 encoder, which this PyAV/FFmpeg build lacks")
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner unless told to log errors only
        super().__init__(device, **args)

    def _options(self, crf: int) -> dict[str, str]:
        return {"crf": str(crf), "preset": self.preset, "svtav1-params": "lp=1"}

    def _clean(self, packet: bytes) -> bytes:
        return strip_av1(packet)
