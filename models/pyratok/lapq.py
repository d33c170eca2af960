"""LaPQ: the language-aligned pyramidal quantizer (paper §3.2, Eq. 1): q(l) = Q_l(q(l-1), F(l), e_t).

Each level l reads encoder features F(l) at its own depth through a lateral 1x1x1 Conv3D (optionally, for the
shallow levels, a small causal conv stack: `CausalLateral`), adds the previous level's
quantized code resampled to its grid (causal average pooling) and projected (and, with a semantic trunk, that
trunk's features on its grid, projected: models/pyratok/trunk.py), normalizes (LayerNorm), lets every
visual token attend to the projected text tokens (multi-head cross-attention, residual with a fixed scale, as in the
release's LaPQuantizer3D but switched on), and projects to k bits. The bits are sign-quantized with a straight-through
estimator onto ONE binary codebook {-1,+1}^k shared by all levels (so a code means the same thing at every depth and
the text projection `text_to_code` serves every level), optionally with residual sub-stages scaled by 2^-i.
Per level and stage: commitment MSE(z, sg(q)) and the per-bit factorized entropy regularizer (inverse temperature
100), both as in LaPQ.py (here averaged over levels and stages, the entropy per bit). The decoder reads the last
level only.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.pyratok.trunk import causal_resample
from models.tokenizer.binary import factorized_entropy_loss, residual_sign_quantize
from models.tokenizer.quantizer import QuantizedLevel, Quantizer, QuantizerOutput, TextContext, causal_pool

DEFAULT_TAPS = ("stage0", "stage1", "stage2", "latent")
EXTRA_TAPS = ("stage3", "mid")


def taps_for_levels(levels: int) -> tuple[str, ...]:
    """Which encoder depths the L levels read: the deepest L of (stage0, stage1, stage2, latent) for L <= 4 (the
    inferred tap table of the research note); L = 5 and 6 add stage3 and the mid block."""
    if levels < 1 or levels > 6:
        raise ValueError(f"levels must be 1..6, got {levels}")
    if levels <= 4:
        return DEFAULT_TAPS[4 - levels:]
    return ("stage0", "stage1", "stage2", *EXTRA_TAPS[:levels - 4], "latent")


def parse_align_levels(spec, levels: int) -> tuple[int, ...]:
    """"none" | "last" | "all" | a list of 1-based level numbers -> 0-based level indices that see the text."""
    if spec is None or spec == "none" or spec == []:
        return ()
    if spec == "all":
        return tuple(range(levels))
    if spec == "last":
        return (levels - 1,)
    if isinstance(spec, str):
        spec = [int(s) for s in spec.replace("[", "").replace("]", "").split(",") if s.strip()]
    out = sorted({int(i) - 1 for i in spec})
    if any(i < 0 or i >= levels for i in out):
        raise ValueError(f"align_levels {spec} out of range for {levels} levels (1-based)")
    return tuple(out)


class CausalLateral(nn.Sequential):
    """`depth` k x k x k Conv3D layers (SiLU between) from a tap to the level's width, causal in time: each output
    step sees its own and the k-1 previous steps (zero padding before frame 0, as the Wan encoder's causal convs),
    and space is zero-padded to keep the grid. Kernel 1 and depth 1 is the paper's 1x1x1 lateral."""

    def __init__(self, in_channels: int, dim: int, kernel: int = 1, depth: int = 1):
        if kernel < 1 or kernel % 2 == 0 or depth < 1:
            raise ValueError(f"lateral kernel must be odd and >= 1 and depth >= 1, got {kernel}, {depth}")
        layers: list[nn.Module] = []
        for i in range(depth):
            if i:
                layers.append(nn.SiLU())
            layers.append(nn.Conv3d(in_channels if i == 0 else dim, dim, kernel))
        super().__init__(*layers)
        self.pad = (kernel // 2, kernel // 2, kernel // 2, kernel // 2, kernel - 1, 0)  # (w, w, h, h, t before, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(F.pad(x, self.pad) if isinstance(layer, nn.Conv3d) and any(self.pad) else x)
        return x


class LaPQLevel(nn.Module):
    def __init__(self, in_channels: int, dim: int, bits: int, text_dim: int, heads: int, has_prev: bool,
                 attend_text: bool, text_scale: float, lateral_kernel: int = 1, lateral_depth: int = 1):
        super().__init__()
        self.lateral = (nn.Conv3d(in_channels, dim, 1) if lateral_kernel == 1 and lateral_depth == 1
                        else CausalLateral(in_channels, dim, lateral_kernel, lateral_depth))
        self.prev = nn.Linear(bits, dim) if has_prev else None
        self.norm = nn.LayerNorm(dim)
        self.attend_text = attend_text
        self.text_scale = float(text_scale)
        if attend_text:
            self.text_kv = nn.Linear(text_dim, dim)
            self.text_norm = nn.LayerNorm(dim)
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out_norm = nn.LayerNorm(dim)
        self.to_bits = nn.Linear(dim, bits)

    def forward(self, feat: torch.Tensor, prev: torch.Tensor | None, text: TextContext | None,
                semantic: torch.Tensor | None = None, semantic_into: str = "lateral") -> torch.Tensor:
        """`semantic`: the semantic trunk's features projected to this level's width ("lateral": added to the
        lateral, before the norms) or to its k code channels ("code": added to the pre-sign values)."""
        b, _, t, h, w = feat.shape
        x = self.lateral(feat)
        if semantic is not None and semantic.shape[2:] != x.shape[2:]:  # a coarser trunk grid: onto this one
            semantic = causal_resample(semantic, tuple(x.shape[2:]))
        if semantic is not None and semantic_into == "lateral":
            x = x + semantic
        x = x.flatten(2).transpose(1, 2)  # (B, N, dim)
        if self.prev is not None and prev is not None:
            x = x + self.prev(causal_pool(prev, (t, h, w)).flatten(2).transpose(1, 2))
        x = self.norm(x)
        if self.attend_text and text is not None:
            ctx = self.text_norm(self.text_kv(text.tokens))
            if ctx.shape[1] == 1:  # one key (the null token): softmax is 1, every query gets W_o W_v ctx; skip Q K
                attn = self._single_key_attention(ctx)
            else:
                attn, _ = self.attn(x, ctx, ctx, key_padding_mask=~text.mask, need_weights=False)
            x = x + self.text_scale * attn
        z = self.to_bits(self.out_norm(x)).transpose(1, 2).reshape(b, -1, t, h, w)
        return z + semantic if semantic is not None and semantic_into == "code" else z

    def _single_key_attention(self, ctx: torch.Tensor) -> torch.Tensor:
        """nn.MultiheadAttention's output for a context of one token, (B, 1, dim): its value through the output
        projection, whatever the queries (exact; it saves the query and key projections over every cell)."""
        attn = self.attn
        dim = ctx.shape[-1]
        w_v = attn.in_proj_weight[2 * dim:]
        b_v = attn.in_proj_bias[2 * dim:] if attn.in_proj_bias is not None else None
        return attn.out_proj(F.linear(ctx, w_v, b_v))


class LaPQ(Quantizer):
    """The pyramid of L language-aligned binary quantizers (see the module docstring)."""

    bit_order = "msb"

    def __init__(self, tap_channels: dict[str, int], tap_strides: dict[str, tuple[int, int, int]], levels: int = 4,
                 bits: int = 16, residual_stages: int = 1, dim: int = 64, heads: int = 4, text_dim: int = 256,
                 align_levels="all", text_scale: float = 0.7, inv_temperature: float = 100.0,
                 lateral_kernel: int = 1, lateral_depth: int = 1,
                 semantic_channels: dict[tuple[int, int, int], int] | None = None, semantic_into: str = "lateral"):
        super().__init__()
        if not 1 <= bits <= 30:
            raise ValueError(f"codebook_bits must be 1..30, got {bits}")
        self.taps = taps_for_levels(levels)
        self.bits = bits
        self.residual_stages = int(residual_stages)
        self.out_channels = bits
        self.inv_temperature = inv_temperature
        self.text_levels = parse_align_levels(align_levels, levels)
        self.strides = [tuple(tap_strides[t]) for t in self.taps]
        self.level_names = [f"l{i + 1}" for i in range(levels)]
        shallow = {"lateral_kernel": lateral_kernel, "lateral_depth": lateral_depth}  # the last level keeps 1x1x1
        self.blocks = nn.ModuleList(
            LaPQLevel(tap_channels[tap], dim, bits, text_dim, heads, i > 0, i in self.text_levels, text_scale,
                      **(shallow if i < levels - 1 else {}))
            for i, tap in enumerate(self.taps))
        # with a semantic trunk: one 1x1x1 projection per level from the trunk's output on its grid, zero at the
        # start so that adding the trunk does not change a trained model's codes
        self.semantic_in = None
        if semantic_into not in ("lateral", "code"):
            raise ValueError(f"semantic_into must be 'lateral' or 'code', got {semantic_into!r}")
        self.semantic_into = semantic_into
        if semantic_channels is not None:
            width = bits if semantic_into == "code" else dim
            self.semantic_in = nn.ModuleList(nn.Conv3d(semantic_channels[s], width, 1) for s in self.strides)
            for proj in self.semantic_in:
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)

    def forward(self, features: list[torch.Tensor], text: TextContext | None = None,
                semantic: dict[tuple[int, int, int], torch.Tensor] | None = None) -> QuantizerOutput:
        """Losses are averaged over levels (and residual stages), and the entropy is reported per bit (nats / bit,
        in [0, 2 ln 2]), so their scale does not grow with the number of levels, stages or bits. `semantic`: the
        semantic trunk's features by stride (needed exactly when the quantizer was built with a trunk)."""
        if (semantic is None) != (self.semantic_in is None):
            raise ValueError("semantic trunk features must be given exactly when LaPQ was built with a trunk")
        levels: list[QuantizedLevel] = []
        commit = features[0].new_zeros(())
        entropy = features[0].new_zeros(())
        prev = None
        for i, (block, feat) in enumerate(zip(self.blocks, features)):
            sem = self.semantic_in[i](semantic[self.strides[i]]) if semantic is not None else None
            z = block(feat, prev, text, sem, self.semantic_into)
            value, codes, c = residual_sign_quantize(z, self.residual_stages)
            commit = commit + c / self.residual_stages
            if self.training:
                residual = z
                for q_i, code in enumerate(codes):  # entropy of each stage's input, as LaPQ.py does per stage
                    entropy = entropy + factorized_entropy_loss(residual, self.inv_temperature) / (
                        self.bits * self.residual_stages)
                    residual = residual - code.detach() * (2.0 ** -q_i)
            levels.append(QuantizedLevel(self.level_names[i], z, value, codes, self.strides[i], self.bit_order))
            prev = value
        n = len(self.blocks)
        return QuantizerOutput(levels[-1].value, levels, {"commitment": commit / n, "entropy": entropy / n})
