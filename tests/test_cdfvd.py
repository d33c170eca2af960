"""Content-debiased FVD: a tiny VideoMAE-v2 checkpoint (cd-fvd's key layout) converted to a transformers folder gives
the features of a direct re-implementation of cd-fvd's `forward_features`."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.cli import main
from harness.errors import DataError
from harness.metrics.cdfvd import VideoMAEFeatures, convert_videomaev2_checkpoint, videomae_unavailable

D, DEPTH, HEADS, MLP, PATCH, TUBELET, SIZE, FRAMES = 16, 2, 2, 24, 8, 2, 32, 4


def _videomaev2_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, s=0.2: torch.randn(*shape, generator=g) * s  # noqa: E731
    state = {"patch_embed.proj.weight": r(D, 3, TUBELET, PATCH, PATCH), "patch_embed.proj.bias": r(D),
             "fc_norm.weight": 1 + r(D), "fc_norm.bias": r(D), "head.weight": r(5, D), "head.bias": r(5)}
    for i in range(DEPTH):
        p = f"blocks.{i}."
        state.update({p + "norm1.weight": 1 + r(D), p + "norm1.bias": r(D), p + "attn.qkv.weight": r(3 * D, D),
                      p + "attn.q_bias": r(D), p + "attn.v_bias": r(D), p + "attn.proj.weight": r(D, D),
                      p + "attn.proj.bias": r(D), p + "norm2.weight": 1 + r(D), p + "norm2.bias": r(D),
                      p + "mlp.fc1.weight": r(MLP, D), p + "mlp.fc1.bias": r(MLP), p + "mlp.fc2.weight": r(D, MLP),
                      p + "mlp.fc2.bias": r(D)})
    return state


def _sinusoid(n, d):
    pos = np.arange(n)[:, None] / np.power(10000, 2 * (np.arange(d) // 2) / d)[None]
    pos[:, 0::2], pos[:, 1::2] = np.sin(pos[:, 0::2]), np.cos(pos[:, 1::2])
    return torch.tensor(pos, dtype=torch.float32)[None]


def _cdfvd_features(state, clips):
    """cd-fvd: preprocess_videomae (per clip: (C, T, H, W) / 255, bilinear to SIZE), then forward_features."""
    x = torch.stack([F.interpolate(torch.as_tensor(c).permute(3, 0, 1, 2).float() / 255, size=(SIZE, SIZE),
                                   mode="bilinear", align_corners=False) for c in clips])  # (B, C, T, H, W)
    x = F.conv3d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"],
                 stride=(TUBELET, PATCH, PATCH)).flatten(2).transpose(1, 2)  # a 5th frame is dropped here
    b, n, _ = x.shape
    x = x + _sinusoid(n, D)
    for i in range(DEPTH):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (D,), state[p + "norm1.weight"], state[p + "norm1.bias"], 1e-6)
        bias = torch.cat([state[p + "attn.q_bias"], torch.zeros(D), state[p + "attn.v_bias"]])
        q, k, v = F.linear(h, state[p + "attn.qkv.weight"], bias).reshape(b, n, 3, HEADS, -1).permute(2, 0, 3, 1, 4)
        attn = ((q * (D // HEADS) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        x = x + F.linear((attn @ v).transpose(1, 2).reshape(b, n, D), state[p + "attn.proj.weight"],
                         state[p + "attn.proj.bias"])
        h = F.layer_norm(x, (D,), state[p + "norm2.weight"], state[p + "norm2.bias"], 1e-6)
        h = F.linear(F.gelu(F.linear(h, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])),
                     state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
        x = x + h
    return F.layer_norm(x.mean(1), (D,), state["fc_norm.weight"], state["fc_norm.bias"], 1e-6)


def test_converted_videomaev2_gives_cdfvd_features(tmp_path, rng):
    state = _videomaev2_state()
    torch.save({"module": state}, tmp_path / "ckpt.pth")
    folder = convert_videomaev2_checkpoint(tmp_path / "ckpt.pth", tmp_path / "videomae", num_heads=HEADS,
                                           image_size=SIZE, num_frames=FRAMES)
    assert json.loads((folder / "config.json").read_text())["layer_norm_eps"] == 1e-6
    ext = VideoMAEFeatures(folder, batch_size=2)
    clips = rng.integers(0, 256, (3, FRAMES + 1, 40, 48, 3), dtype=np.uint8)  # 5 frames: cd-fvd keeps 4
    got = ext(clips)
    with torch.no_grad():
        want = _cdfvd_features(state, clips).double().numpy()
    assert got.shape == (3, D)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="takes 4 frames"):
        ext(clips[:, :3])


def test_conversion_refuses_other_checkpoints_and_absence_is_reported(tmp_path, monkeypatch):
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(DataError, match="other.pth: is not a VideoMAE-v2"):
        convert_videomaev2_checkpoint(tmp_path / "other.pth", tmp_path / "out")
    monkeypatch.setenv("PYRATOK_BENCH_WEIGHTS", str(tmp_path))
    assert "videomae-v2-g-ssv2 not found" in videomae_unavailable()


def test_score_fvd_with_the_videomae_detector(tmp_path, monkeypatch, rng):
    state = _videomaev2_state(1)
    torch.save(state, tmp_path / "ckpt.pth")
    weights = tmp_path / "weights"
    convert_videomaev2_checkpoint(tmp_path / "ckpt.pth", weights / "videomae-v2-g-ssv2", num_heads=HEADS,
                                  image_size=SIZE, num_frames=FRAMES)
    monkeypatch.setenv("PYRATOK_BENCH_WEIGHTS", str(weights))
    np.save(tmp_path / "a.npy", rng.integers(0, 256, (5, FRAMES, 24, 24, 3), dtype=np.uint8))
    np.save(tmp_path / "b.npy", rng.integers(0, 128, (6, FRAMES, 24, 24, 3), dtype=np.uint8))
    out = tmp_path / "o.json"
    assert main(["score", "fvd", "--detector", "videomae", "--real", str(tmp_path / "a.npy"), "--fake",
                 str(tmp_path / "b.npy"), "--num-frames", str(FRAMES), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["detector"] == "videomae" and got["fvd"] > 0 and got["n_fake"] == 6
