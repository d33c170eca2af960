"""LPIPS v0.1 (Zhang et al. 2018) as the `lpips` package computes it, without the package or torchvision.

Inputs in [-1, 1] go through the lpips scaling layer ((x - shift) / scale with its ImageNet constants), an ImageNet
backbone (AlexNet or VGG16, torchvision's layer layout so its checkpoints load directly), five tapped ReLU outputs,
each unit-normalised over channels (x / (||x|| + 1e-10)), squared differences weighted by the learned 1x1 "lin"
layers, averaged over space and summed over the five layers. A frame gets one value; a video the mean over its
frames (TokenBench, LARP, common_metrics). The backbones are not interchangeable: alex and vgg values are reported
under different names.

Weights (see harness/weights.py): `alexnet-owt-7be5be79.pth` / `vgg16-397923af.pth` (torchvision checkpoints, only
`features.*` is used) and `alex.pth` / `vgg.pth` (lpips v0.1 lin layers, keys `lin{k}.model.1.weight`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from harness.errors import DataError
from harness.weights import find_weight, missing_message, require_weight, weight_sha256

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10

# per backbone: torchvision checkpoint, lpips lin file, indices (in `features`) of the tapped ReLUs, their channels
NETS = {
    "alex": ("alexnet-owt-7be5be79.pth", "alex.pth", (1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg": ("vgg16-397923af.pth", "vgg.pth", (3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
}


def alexnet_features() -> nn.Sequential:
    """torchvision `alexnet().features` (parameters `features.{0,3,6,8,10}.*`)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))


def vgg16_features() -> nn.Sequential:
    """torchvision `vgg16().features` (13 3x3 convolutions, max pools after blocks 2, 4, 7, 10, 13)."""
    layers: list[nn.Module] = []
    c = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """LPIPS distance of image pairs in [-1, 1]: forward(a, b) with (N, 3, H, W) -> (N,)."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in NETS:
            raise ValueError(f"unknown LPIPS backbone {net!r} (known: {', '.join(NETS)})")
        self.net = net
        _, _, self.taps, channels = NETS[net]
        self.features = alexnet_features() if net == "alex" else vgg16_features()
        self.lins = nn.ParameterList([nn.Parameter(torch.zeros(1, ch, 1, 1)) for ch in channels])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def tapped(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs, last = [], self.taps[-1]
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
            if i == last:
                break
        return outs

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = self.tapped((a - self.shift) / self.scale)
        fb = self.tapped((b - self.shift) / self.scale)
        total = 0.0
        for xa, xb, w in zip(fa, fb, self.lins):
            na = xa / (xa.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            nb = xb / (xb.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            total = total + ((na - nb).pow(2) * w).sum(dim=1).mean(dim=(1, 2))
        return total

    # -- weights ----------------------------------------------------------------------------------------------
    def load_backbone(self, path: str | Path) -> None:
        state = _load_state(path)
        feats = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        try:
            missing, unexpected = self.features.load_state_dict(feats, strict=False)
        except RuntimeError as exc:  # shape mismatches
            raise DataError(str(path), f"does not fit torchvision's {self.net} layout ({exc})") from exc
        if missing or unexpected or not feats:
            raise DataError(str(path), f"is not a torchvision {self.net} checkpoint (features.* keys: missing "
                                       f"{missing[:3]}, unexpected {unexpected[:3]})")

    def load_lins(self, path: str | Path) -> None:
        state = _load_state(path)
        for k, param in enumerate(self.lins):
            w = state.get(f"lin{k}.model.1.weight", state.get(f"lin{k}.model.0.weight"))
            if w is None or tuple(w.shape) != tuple(param.shape):
                raise DataError(str(path), f"has no lpips v0.1 layer lin{k}.model.1.weight of shape "
                                           f"{tuple(param.shape)} (found {None if w is None else tuple(w.shape)})")
            param.data.copy_(w)


def _load_state(path: str | Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(str(path), f"cannot be loaded as a weights-only state dict ({type(exc).__name__}: {exc})")
    if not isinstance(state, dict):
        raise DataError(str(path), f"holds a {type(state).__name__}, not a state dict")
    return state


def lpips_unavailable(net: str) -> str | None:
    """Why LPIPS-`net` cannot be computed here (a weight file is absent), or None."""
    backbone, lins, _, _ = NETS[net]
    missing = [missing_message(n) for n in (backbone, lins) if find_weight(n) is None]
    return "; ".join(missing) or None


def load_lpips(net: str, device: str | torch.device = "cpu") -> tuple[LPIPS, dict[str, str]]:
    """LPIPS-`net` with its weights, and the sha256 of each weight file by name."""
    backbone, lins, _, _ = NETS[net]
    model = LPIPS(net)
    pb, pl = require_weight(backbone), require_weight(lins)
    model.load_backbone(pb)
    model.load_lins(pl)
    return model.eval().to(device), {backbone: weight_sha256(pb), lins: weight_sha256(pl)}


@torch.no_grad()
def lpips_frames(model: LPIPS, reference, reconstruction, chunk: int = 16) -> np.ndarray:
    """Per-frame LPIPS (T,) of uint8 (T, H, W, 3) frames (mapped to [-1, 1] by x / 127.5 - 1)."""
    a, b = torch.as_tensor(np.asarray(reference)), torch.as_tensor(np.asarray(reconstruction))
    if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected two uint8 (T, H, W, 3) arrays of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    device = model.shift.device
    out = []
    for s in range(0, a.shape[0], chunk):
        xa = a[s:s + chunk].permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(device)
        xb = b[s:s + chunk].permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(device)
        out.append(model(xa, xb).double().cpu())
    return torch.cat(out).numpy()
