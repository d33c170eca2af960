"""LPIPS: both backbones from torchvision-format checkpoints plus lpips v0.1 lin files, against a direct
re-implementation of the lpips definitions written with functional ops."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.errors import DataError
from harness.metrics.lpips import LPIPS, load_lpips, lpips_frames, lpips_unavailable

CONVS = {  # torchvision features index -> (out, in, kernel)
    "alex": {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)},
    "vgg": {i: (o, c, 3) for i, (o, c) in zip((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
                                              ((64, 3), (64, 64), (128, 64), (128, 128), (256, 128), (256, 256),
                                               (256, 256), (512, 256), (512, 512), (512, 512), (512, 512),
                                               (512, 512), (512, 512)))},
}
LIN_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
FILES = {"alex": ("alexnet-owt-7be5be79.pth", "alex.pth"), "vgg": ("vgg16-397923af.pth", "vgg.pth")}


def _write_weights(folder, net, seed=0):
    g = torch.Generator().manual_seed(seed)
    backbone = {}
    for i, (o, c, k) in CONVS[net].items():
        backbone[f"features.{i}.weight"] = torch.randn(o, c, k, k, generator=g) * (2.0 / (c * k * k)) ** 0.5
        backbone[f"features.{i}.bias"] = torch.randn(o, generator=g) * 0.01
    backbone["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision checkpoints carry a classifier: ignored
    lins = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(LIN_CHANNELS[net])}
    torch.save(backbone, folder / FILES[net][0])
    torch.save(lins, folder / FILES[net][1])
    return backbone, lins


def _reference_lpips(net, backbone, lins, a, b):
    """The lpips v0.1 computation written out: scaling layer, the five slices, unit-normalisation, lin, average."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def conv(x, i, pad, stride=1):
        return F.relu(F.conv2d(x, backbone[f"features.{i}.weight"], backbone[f"features.{i}.bias"], stride, pad))

    def feats(x):
        x = (x - shift) / scale
        if net == "alex":
            h1 = conv(x, 0, 2, 4)
            h2 = conv(F.max_pool2d(h1, 3, 2), 3, 2)
            h3 = conv(F.max_pool2d(h2, 3, 2), 6, 1)
            h4 = conv(h3, 8, 1)
            return [h1, h2, h3, h4, conv(h4, 10, 1)]
        blocks, out, h = [(0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28)], [], x
        for n, block in enumerate(blocks):
            if n:
                h = F.max_pool2d(h, 2, 2)
            for i in block:
                h = conv(h, i, 1)
            out.append(h)
        return out

    total = 0
    for k, (fa, fb) in enumerate(zip(feats(a), feats(b))):
        na = fa / (torch.sqrt(torch.sum(fa ** 2, dim=1, keepdim=True)) + 1e-10)
        nb = fb / (torch.sqrt(torch.sum(fb ** 2, dim=1, keepdim=True)) + 1e-10)
        total = total + F.conv2d((na - nb) ** 2, lins[f"lin{k}.model.1.weight"]).mean(dim=(2, 3))[:, 0]
    return total


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_the_reference_definition(tmp_path, monkeypatch, rng, net):
    monkeypatch.setenv("PYRATOK_BENCH_WEIGHTS", str(tmp_path))
    assert FILES[net][0] in lpips_unavailable(net) and FILES[net][1] in lpips_unavailable(net)
    backbone, lins = _write_weights(tmp_path, net)
    assert lpips_unavailable(net) is None
    model, hashes = load_lpips(net)
    assert set(hashes) == set(FILES[net]) and all(len(h) == 64 for h in hashes.values())
    ref = rng.integers(0, 256, (3, 64, 72, 3), dtype=np.uint8)
    rec = np.clip(ref.astype(int) + rng.integers(-40, 40, ref.shape), 0, 255).astype(np.uint8)
    got = lpips_frames(model, ref, rec, chunk=2)
    to_in = lambda f: torch.as_tensor(f).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    with torch.no_grad():
        want = _reference_lpips(net, backbone, lins, to_in(ref), to_in(rec)).double().numpy()
    assert got.shape == (3,) and (got > 0).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert (lpips_frames(model, ref, ref) == 0).all()  # identical images
    np.testing.assert_allclose(lpips_frames(model, rec, ref), got, rtol=1e-5)  # symmetric


def test_lpips_refuses_checkpoints_of_the_wrong_kind(tmp_path):
    model = LPIPS("alex")
    torch.save({"features.0.weight": torch.zeros(2, 2)}, tmp_path / "bad.pth")
    with pytest.raises(DataError, match="bad.pth"):
        model.load_backbone(tmp_path / "bad.pth")
    torch.save({"lin0.model.1.weight": torch.zeros(1, 3, 1, 1)}, tmp_path / "lin.pth")
    with pytest.raises(DataError, match="lin.pth: has no lpips v0.1 layer lin0"):
        model.load_lins(tmp_path / "lin.pth")
    with pytest.raises(ValueError, match="unknown LPIPS backbone"):
        LPIPS("squeeze")
