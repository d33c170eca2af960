"""Stand-ins for the FVD detectors, with the real file formats: a TorchScript module with the StyleGAN-V detector's
call signature, and random-initialised I3D weights in the TATS state-dict layout."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class ScriptedDetector(nn.Module):
    """forward(x, rescale, resize, return_features) like i3d_torchscript.pt (which has 400 outputs; tests use fewer
    so the Fréchet distances stay cheap), nonlinear in the input."""

    def __init__(self, outputs: int = 400):
        super().__init__()
        self.proj = nn.Conv3d(3, outputs, kernel_size=(2, 16, 16), stride=(2, 16, 16))

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=[int(x.shape[2]), 224, 224], mode="trilinear", align_corners=False)
        torch._assert(int(x.shape[-1]) == 224, "the detector wants 224x224 inputs")
        y = torch.tanh(self.proj(x)).mean(dim=[2, 3, 4])
        if return_features:
            return y
        return torch.softmax(y, dim=1)


def write_scripted_detector(folder: Path, seed: int = 0, outputs: int = 16) -> Path:
    torch.manual_seed(seed)
    path = Path(folder) / "i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(ScriptedDetector(outputs).eval()), str(path))
    return path


def random_i3d(seed: int = 0):
    """An InceptionI3d with random weights and random BatchNorm statistics (so eval mode is not the identity)."""
    from harness.metrics.i3d import InceptionI3d

    torch.manual_seed(seed)
    model = InceptionI3d()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model.eval()
