"""LoRA on convolutions, as a low-rank change of the kernel: W' = W + (alpha / r) * B·A (PyraTok §3.2.3: r 16,
alpha 32 in the encoder blocks of a frozen pretrained VAE).

Why a weight parametrization (torch.nn.utils.parametrize) and not peft's Conv3d LoRA: the Wan encoder's causal
convolutions pad in time and prepend their feature cache inside `forward` (diffusers' WanCausalConv3d), so a LoRA
branch applied to the module's input beside it would see neither. Expressed on the kernel, the adapted layer is still
one convolution of the same shape and every padding and cache path stays the base module's. It is the same function
as the usual branch form: A is r filters with the base kernel's shape, B a 1x1 mix of those r maps into the output
channels, and conv(x, W) + s·B(A(x)) = conv(x, W + s·B·A) because both are linear (tested).

The factors live in the state dict as `<conv>.parametrizations.weight.original` (the frozen base kernel) and
`<conv>.parametrizations.weight.0.{lora_A, lora_B, scale}`; `merge_lora_state` turns such a state into plain
`<conv>.weight` kernels, so a LoRA-trained checkpoint loads into the model without LoRA (bundles are exported merged).
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

CONV_TYPES = (nn.Conv2d, nn.Conv3d)
_ORIGINAL = re.compile(r"^(?P<conv>.+)\.parametrizations\.weight\.original$")


class LoRADelta(nn.Module):
    """The parametrization W -> W + scale · B·A, with B zero at the start (the adapted model equals the base)."""

    def __init__(self, weight: torch.Tensor, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        out_channels, in_channels, *kernel = weight.shape
        self.lora_A = nn.Parameter(torch.empty(rank, in_channels, *kernel, dtype=weight.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as peft / the LoRA reference implementation
        self.lora_B = nn.Parameter(torch.zeros(out_channels, rank, dtype=weight.dtype))
        self.register_buffer("scale", torch.tensor(float(alpha) / rank))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + low_rank_delta(self.lora_A, self.lora_B, self.scale).to(weight.dtype)


def low_rank_delta(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """scale · B·A shaped as the kernel (out, in, *k): A (r, in, *k), B (out, r)."""
    return (scale * (b @ a.flatten(1))).view(b.shape[0], *a.shape[1:])


def add_lora(root: nn.Module, rank: int, alpha: float, prefixes: list[str] | tuple[str, ...]) -> list[str]:
    """Parametrize the kernel of every Conv2d/Conv3d (groups 1) of `root` whose name starts with one of `prefixes`
    ("" = all); the base kernels are frozen, the factors train. Returns the adapted modules' names."""
    adapted = []
    for name, module in root.named_modules():
        if not isinstance(module, CONV_TYPES) or not any(name.startswith(p) for p in prefixes):
            continue
        if module.groups != 1:
            raise ValueError(f"LoRA on grouped convolution {name} is not supported")
        if parametrize.is_parametrized(module, "weight"):
            raise ValueError(f"{name} already has a parametrized weight")
        parametrize.register_parametrization(module, "weight", LoRADelta(module.weight.detach(), rank, alpha))
        module.parametrizations.weight.original.requires_grad_(False)
        adapted.append(name)
    if not adapted:
        raise ValueError(f"no convolution of {type(root).__name__} matches the LoRA targets {list(prefixes)}")
    return adapted


def lora_parameters(root: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in root.named_parameters() if n.endswith((".lora_A", ".lora_B"))]


def has_lora_keys(state: dict[str, torch.Tensor]) -> bool:
    return any(_ORIGINAL.match(k) for k in state)


def merge_lora_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with LoRA-parametrized kernels -> the same with plain merged `<conv>.weight` kernels."""
    out = dict(state)
    for key in list(state):
        m = _ORIGINAL.match(key)
        if m is None:
            continue
        base = f"{m['conv']}.parametrizations.weight"
        parts = [f"{base}.0.lora_A", f"{base}.0.lora_B", f"{base}.0.scale"]
        missing = [p for p in parts if p not in state]
        if missing:
            raise ValueError(f"LoRA state of {m['conv']} is incomplete: {', '.join(missing)} missing")
        w = state[key]
        delta = low_rank_delta(state[parts[0]].float(), state[parts[1]].float(), state[parts[2]].float())
        out[f"{m['conv']}.weight"] = (w.float() + delta).to(w.dtype)
        for k in (key, *parts):
            del out[k]
    return out
