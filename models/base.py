"""The model adapter protocol: what a model must answer, nothing about how it is scored.

A task builds requests; an adapter answers them. Four kinds of request exist (see ARCHITECTURE in the README):
`encode`/`decode` (capability "reconstruct"), `features` ("features"), `embed_text` ("embed_text") and `generate`
("generate"). An adapter declares its capabilities and the runner refuses a task that needs one it lacks, before any
data is decoded.

Video tensors are float32 (B, 3, T, H, W) in [-1, 1], the convention of video VAEs. The harness converts to and
from exact uint8 frames; adapters never see file paths.
"""
from __future__ import annotations

import dataclasses
import math
from abc import ABC
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

RECONSTRUCT = "reconstruct"
FEATURES = "features"
EMBED_TEXT = "embed_text"
GENERATE = "generate"
ALL_CAPABILITIES = frozenset({RECONSTRUCT, FEATURES, EMBED_TEXT, GENERATE})


@dataclass
class CodeLevel:
    """The discrete codes of one level (a pyramid level or a residual stage) for a batch.

    Binary tokenizers give `bits` (B, t, h, w, k) in {0, 1}, with `bit_order` saying how they map to an index;
    index tokenizers (VQ, FSQ) give `indices` (B, t, h, w) and `codebook_size`.
    """

    name: str
    bits: torch.Tensor | None = None
    indices: torch.Tensor | None = None
    codebook_size: int | None = None
    bit_order: str = "msb"  # "msb": bit 0 has weight 2^(k-1) (PyraTok, BSQ); "lsb": weight 2^0 (Open-MAGVIT2 LFQ)

    def __post_init__(self):
        if (self.bits is None) == (self.indices is None):
            raise ValueError("a code level holds either bits or indices")
        if self.bits is not None:
            self.codebook_size = 2 ** self.bits.shape[-1]
        elif self.codebook_size is None:
            raise ValueError("index codes need a codebook_size")

    @property
    def code_bits(self) -> int:
        """Bits needed to write one code of this level."""
        return self.bits.shape[-1] if self.bits is not None else math.ceil(math.log2(self.codebook_size))

    @property
    def num_codes(self) -> int:
        """Codes per sample."""
        t = self.bits if self.bits is not None else self.indices
        n = t.shape[1:-1] if self.bits is not None else t.shape[1:]
        return int(math.prod(n))

    def as_indices(self) -> torch.Tensor:
        """Integer code indices (B, t, h, w) in the level's declared bit order."""
        if self.indices is not None:
            return self.indices.long()
        k = self.bits.shape[-1]
        weights = 2 ** torch.arange(k - 1, -1, -1) if self.bit_order == "msb" else 2 ** torch.arange(k)
        return (self.bits.long() * weights.to(self.bits.device)).sum(-1)

    def select(self, i: int) -> "CodeLevel":
        pick = lambda t: None if t is None else t[i:i + 1]  # noqa: E731
        return dataclasses.replace(self, bits=pick(self.bits), indices=pick(self.indices))


@dataclass
class Tokens:
    """What `encode` returns: whatever `decode` needs, plus what is needed to count bits honestly.

    `bits` (B,) is the exact number of bits that represent each clip (entropy-coded bytes for codecs, code lengths
    for tokenizers); None for continuous latents, whose size is then given by `latent_elements` instead.
    """

    video_shape: tuple[int, int, int]  # (T, H, W) of the input clip
    levels: list[CodeLevel] = field(default_factory=list)
    bits: torch.Tensor | None = None
    latent: torch.Tensor | None = None
    latent_elements: int | None = None
    payload: Any = None  # adapter-private state decode needs (e.g. codec bitstreams, text context)

    @property
    def pixels(self) -> int:
        t, h, w = self.video_shape
        return t * h * w

    def bits_per_pixel(self) -> torch.Tensor | None:
        return None if self.bits is None else self.bits.double() / self.pixels


@dataclass
class GeneratedVideos:
    """What `generate_videos` returns: one video per request, and the tokens they were decoded from when the adapter
    has them (a prior's sampled codes), so generation tasks can measure the codebook usage of what was generated."""

    video: torch.Tensor  # float32 (N, 3, T, H, W) in [-1, 1]
    tokens: Tokens | None = None  # batch of N, in request order


@dataclass(frozen=True)
class ModelMetadata:
    """Facts shown in reports. Numbers that depend on the input (tokens per clip, bpp) are measured, not stored."""

    display_name: str
    family: str  # "pyratok", "lfq", "vq", "fsq", "vae", "codec", "reference", ...
    compression: tuple[int, int, int] | None = None  # (t, h, w) downsampling factors
    code_bits: int | None = None  # bits per token (binary tokenizers) or log2 codebook size
    latent_channels: int | None = None
    discrete: bool = True
    source: str = ""
    license: str = ""
    notes: str = ""


class ModelAdapter(ABC):
    """Base class of every model. Subclasses set `capabilities`, `metadata` and implement the matching methods.

    Constructor keyword arguments are the model args (`--model-arg k=v`); they are recorded with every result and are
    part of the cache key, so two differently configured models never share cached answers.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()
    metadata: ClassVar[ModelMetadata]

    def __init__(self, device: str | torch.device = "cpu", **args: Any):
        self.device = torch.device(device)
        self.args = dict(args)

    # -- identity ---------------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The canonical model args that define this model's answers (recorded, hashed)."""
        return dict(self.args)

    def weight_hashes(self) -> dict[str, str]:
        """sha256 of every weight file the model loaded, by role. Part of the cache key."""
        return {}

    def num_parameters(self) -> int | None:
        module = getattr(self, "module", None)
        if isinstance(module, torch.nn.Module):
            return sum(p.numel() for p in module.parameters())
        return None

    # -- requests --------------------------------------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> Tokens:
        raise NotImplementedError(f"{type(self).__name__} cannot encode")

    def decode(self, tokens: Tokens) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} cannot decode")

    def reconstruct(self, video: torch.Tensor) -> tuple[Tokens, torch.Tensor]:
        tokens = self.encode(video)
        return tokens, self.decode(tokens)

    def features(self, video: torch.Tensor, level: int | str = "last") -> torch.Tensor:
        """Features (B, t, h, w, d) of a clip at a pyramid level ("first", "last" or an index)."""
        raise NotImplementedError(f"{type(self).__name__} has no features")

    def feature_stride(self, level: int | str = "last") -> tuple[int, int, int]:
        """(t, h, w) downsampling of `features` at `level`, so tasks can map cells back to pixels and frames."""
        raise NotImplementedError(f"{type(self).__name__} has no features")

    def feature_frame_index(self, num_frames: int, level: int | str = "last") -> list[int]:
        """For each of `num_frames` input frames, the index of the `features` time step that covers it.

        Default: causal grouping by the temporal stride t of `feature_stride(level)`, as the causal video VAEs do
        (frame 0 alone, then groups of t frames: 1 + ceil((T - 1) / t) steps). A non-causal adapter overrides it."""
        t = int(self.feature_stride(level)[0])
        return [0] + [1 + (f - 1) // t for f in range(1, num_frames)] if num_frames else []

    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """Text embeddings (N, d) in the same space as `features(..., level)` for zero-shot matching."""
        raise NotImplementedError(f"{type(self).__name__} has no text embedding")

    def generate(self, prompts: list[str], seed: int, num_frames: int, height: int, width: int) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} cannot generate")

    def generate_videos(self, prompts: list[str], seeds: list[int], num_frames: int, height: int,
                        width: int) -> GeneratedVideos:
        """One video per (prompt, seed) pair: the request generation tasks make. Each video must depend only on its
        own prompt and seed, never on what else is in the batch, so results do not change with the batch size or
        when an interrupted run resumes. The default calls `generate([prompt], seed, ...)` once per pair; an adapter
        that can batch with one seed per item, or that can hand back its sampled tokens, overrides this."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        videos = [self.generate([p], int(s), num_frames, height, width) for p, s in zip(prompts, seeds)]
        return GeneratedVideos(torch.cat(videos) if videos else torch.zeros(0, 3, num_frames, height, width))

    def generation_settings(self) -> dict[str, Any]:
        """The sampling settings `generate` uses (temperature, top-k/top-p, guidance scale, steps, prior checkpoint),
        recorded with every generated video and result and, when not empty, part of the model's identity (cache key
        and result folder), like `config()`."""
        return {}


def parse_model_args(pairs: list[str] | None) -> dict[str, Any]:
    """["levels=3", "align=last"] -> {"levels": 3, "align": "last"} (YAML scalars: ints, floats, bools, lists)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"model arg {pair!r} is not of the form key=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out
