"""The two I3D detectors of the FVD lineages (Kinetics-400, 400-d output) and how each is loaded.

* `InceptionI3d`: Inception-v1 inflated to 3-D (Carreira & Zisserman 2017) with the module and parameter names of
  piergiaj/pytorch-i3d, so the VideoGPT/TATS checkpoint `i3d_pretrained_400.pt` (a plain state dict) loads with
  `torch.load(weights_only=True)`. Convolutions and pools use TensorFlow "SAME" padding computed from the input size
  (zeros, also before max pooling, as the reference); the output is the 400 logits averaged over time.
* `load_torchscript_i3d`: the StyleGAN-V detector `i3d_torchscript.pt`, distributed only as TorchScript. We load it
  with `torch.jit.load`, which runs TorchScript IR (a statically typed subset interpreted by libtorch, unable to
  import Python modules or call Python functions) and unpickles its constants with TorchScript's own restricted
  unpickler. Before that we also check that the archive is a TorchScript zip whose pickles reference only torch and
  TorchScript types, so a renamed ordinary pickle is refused. Its sha256 goes into every result.
"""
from __future__ import annotations

import math
import pickletools
import zipfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.errors import DataError

NUM_CLASSES = 400
MIN_FRAMES = 9  # fewer frames leave the final 2x7x7 average pool with a temporal extent below 2


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding of one dimension as (front, back): the extra element goes at the back."""
    pad = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return pad // 2, pad - pad // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    t, h, w = x.shape[2:]
    pt, ph, pw = (_same_pad(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
    if pt == ph == pw == (0, 0):
        return x
    return F.pad(x, (*pw, *ph, *pt))


class Unit3D(nn.Module):
    """Conv3d (SAME padding) + optional BatchNorm + optional ReLU; parameters `conv3d.*`, `bn.*` as pytorch-i3d."""

    def __init__(self, in_channels: int, out_channels: int, kernel=(1, 1, 1), stride=(1, 1, 1),
                 relu: bool = True, batch_norm: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-5, momentum=0.001) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pooling after zero SAME padding (the inputs are ReLU outputs, so zeros never win against real values)."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    def __init__(self, in_channels: int, out: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a = Unit3D(in_channels, out[1])
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, out[3])
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


# (name, module factory) in forward order; the names are the state-dict prefixes of pytorch-i3d.
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)), "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)), "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)), "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)), "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """I3D as the VideoGPT/TATS FVD code runs it: input (B, 3, T, 224, 224) in [-1, 1] -> (B, 400) logits averaged
    over time (the dropout before the logits is inactive in eval mode)."""

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(*_MIXED["Mixed_3b"])
        self.Mixed_3c = InceptionModule(*_MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            self.add_module(name, InceptionModule(*_MIXED[name]))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(*_MIXED["Mixed_5b"])
        self.Mixed_5c = InceptionModule(*_MIXED["Mixed_5c"])
        self.logits = Unit3D(1024, num_classes, relu=False, batch_norm=False, bias=True)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Everything up to Mixed_5c: (B, 1024, T', H', W')."""
        for name, module in self.named_children():
            if name == "logits":
                break
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"I3D takes (B, 3, T, H, W) videos, got {tuple(x.shape)}")
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D needs at least {MIN_FRAMES} frames, got {x.shape[2]}")
        x = F.avg_pool3d(self.trunk(x), kernel_size=(2, 7, 7), stride=1)
        x = self.logits(x)  # (B, 400, T'', 1, 1) for 224x224 inputs
        return x.mean(dim=(2, 3, 4))  # logits averaged over time (the spatial extent is 1x1 at 224x224)


def load_tats_i3d(path: str | Path, device: str | torch.device = "cpu") -> InceptionI3d:
    """The VideoGPT/TATS checkpoint `i3d_pretrained_400.pt` (pytorch-i3d state dict), loaded without pickled code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(str(path), f"cannot be loaded as a weights-only state dict ({type(exc).__name__}: {exc})")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = InceptionI3d()
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise DataError(str(path), f"does not fit the pytorch-i3d InceptionI3d layout ({exc})") from exc
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise DataError(str(path), f"is not a pytorch-i3d InceptionI3d state dict (missing {missing[:3]}, "
                                   f"unexpected {unexpected[:3]})")
    return model.eval().to(device)


# Modules a TorchScript archive's pickles may name: tensors, storages, TorchScript classes and containers.
_TORCHSCRIPT_GLOBAL_PREFIXES = ("torch", "__torch__", "collections", "builtins", "_codecs")


def check_torchscript_archive(path: str | Path) -> None:
    """Refuse anything but a TorchScript zip whose pickles reference only torch/TorchScript globals."""
    path = str(path)
    if not zipfile.is_zipfile(path):
        raise DataError(path, "is not a TorchScript archive (not a zip file)")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if not any(n.endswith("/code/__torch__.py") or "/code/" in n for n in names):
            raise DataError(path, "is a zip file without TorchScript code (not made by torch.jit.save)")
        for name in names:
            if name.endswith(".pkl"):
                _check_pickle_globals(path, name, z.read(name))


def _check_pickle_globals(path: str, name: str, data: bytes) -> None:
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if isinstance(arg, str):
            strings.append(arg)
        if op.name in ("GLOBAL", "INST"):
            module = str(arg).split(" ")[0]
        elif op.name == "STACK_GLOBAL":
            module = strings[-2] if len(strings) >= 2 else ""
        else:
            continue
        if not module.startswith(_TORCHSCRIPT_GLOBAL_PREFIXES):
            raise DataError(path, f"{name} references the Python global {module!r}; refusing to load it")


def load_torchscript_i3d(path: str | Path, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """The StyleGAN-V detector (see the module docstring for why torch.jit.load is acceptable here)."""
    check_torchscript_archive(path)
    try:
        module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        raise DataError(str(path), f"cannot be loaded as TorchScript ({type(exc).__name__}: {exc})") from exc
    return module.eval()


def output_time_steps(num_frames: int) -> int:
    """How many temporal logits the TATS I3D averages for a clip of `num_frames` frames (for documentation)."""
    t = math.ceil(num_frames / 2)  # Conv3d_1a stride 2
    t = math.ceil(t / 2)  # MaxPool3d_4a stride 2
    t = math.ceil(t / 2)  # MaxPool3d_5a stride 2
    return t - 1
