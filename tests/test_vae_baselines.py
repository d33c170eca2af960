"""Continuous video VAEs through diffusers, on tiny random configs of the real classes saved with save_pretrained:
the padding/trimming rule, shapes of awkward inputs, determinism and posterior draws, features, loading errors, and
`harness run` end to end for every family."""
import hashlib

import pytest
import torch

from harness.cli import main
from harness.errors import MissingDataError
from harness.io import read_json
from harness.registry import MODELS
from models.baselines.padding import next_multiple, next_valid_frames, pad_video, padded_shape, trim_video
from tests.vae_fixtures import TINY, save_tiny_vae

FAMILIES = sorted(TINY)
# (temporal factor, spatial factor, valid frame step) of each tiny config: the real factors of each family
GEOMETRY = {"cogvideox-vae": (4, 8, 8), "wan-vae": (4, 8, 4), "ltx-vae": (8, 32, 8), "hunyuan-vae": (4, 8, 4)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-vaes")
    return {name: save_tiny_vae(name, root / name) for name in FAMILIES}


def _clip(b=1, t=10, h=70, w=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, t, h, w, generator=g) * 2 - 1


# -- the padding rule --------------------------------------------------------------------------------------------
def test_next_valid_counts_and_multiples():
    assert [next_valid_frames(n, 4) for n in (1, 2, 5, 6, 10, 17)] == [1, 5, 5, 9, 13, 17]
    assert [next_valid_frames(n, 8) for n in (1, 2, 9, 10, 17, 18)] == [1, 9, 9, 17, 17, 25]
    assert [next_multiple(n, 32) for n in (1, 32, 33, 70)] == [32, 32, 64, 96]
    assert padded_shape((10, 70, 90), 4, 8) == (13, 72, 96)
    with pytest.raises(ValueError):
        next_valid_frames(0, 4)


def test_pad_repeats_the_last_frame_and_extends_the_edges():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 1, 2, 3, 4)
    y = pad_video(x, (5, 4, 6))
    assert y.shape == (1, 1, 5, 4, 6)
    assert torch.equal(y[:, :, :2, :3, :4], x)
    assert all(torch.equal(y[:, :, k, :3, :4], x[:, :, 1]) for k in (2, 3, 4))  # last frame repeated
    assert torch.equal(y[0, 0, 0, 3, :4], x[0, 0, 0, 2]) and torch.equal(y[0, 0, 0, :3, 5], x[0, 0, 0, :, 3])
    r = pad_video(x, (2, 5, 6), mode="reflect")
    assert torch.equal(r[0, 0, 0, 3, :4], x[0, 0, 0, 1]) and torch.equal(r[0, 0, 0, 4, :4], x[0, 0, 0, 0])
    assert torch.equal(r[0, 0, 0, :3, 4], x[0, 0, 0, :, 2])  # mirror without repeating the edge
    assert torch.equal(trim_video(y, (2, 3, 4)), x)
    with pytest.raises(ValueError, match="reflect"):
        pad_video(x, (2, 8, 4), mode="reflect")


def test_cogvideox_decoder_needs_1_plus_8k_frames(tiny):
    """Why CogVideoX is padded to 1 + 8k frames: with 1 + 4k (k odd) frames the diffusers decoder returns 4 more."""
    m = MODELS.get("cogvideox-vae")(path=str(tiny["cogvideox-vae"]))
    with torch.no_grad():
        z = m.module.encode(_clip(t=5, h=16, w=16)).latent_dist.mode()
        assert z.shape[2] == 2 and m.module.decode(z).sample.shape[2] == 8
        z = m.module.encode(_clip(t=9, h=16, w=16)).latent_dist.mode()
        assert z.shape[2] == 3 and m.module.decode(z).sample.shape[2] == 9


# -- shapes, the rule in action, determinism ---------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILIES)
def test_awkward_clip_round_trips_through_padding_and_trimming(tiny, name):
    m = MODELS.get(name)(path=str(tiny[name]))
    t_f, s_f, step = GEOMETRY[name]
    assert (m.temporal_factor, m.spatial_factor, m.frame_step) == (t_f, s_f, step)
    assert m.metadata.compression == (t_f, s_f, s_f) and m.metadata.latent_channels == 4
    x = _clip(t=6, h=21, w=35)  # no side valid for any family
    tokens = m.encode(x)
    padded = (next_valid_frames(6, step), next_multiple(21, s_f), next_multiple(35, s_f))
    assert tokens.payload["padded"] == padded
    assert tuple(tokens.latent.shape) == (1, 4, 1 + (padded[0] - 1) // t_f, padded[1] // s_f, padded[2] // s_f)
    assert tokens.bits is None and tokens.bits_per_pixel() is None
    assert tokens.latent_elements == tokens.latent[0].numel()
    out = m.decode(tokens)
    assert out.shape == x.shape and out.dtype == torch.float32 and out.abs().max() <= 1
    with torch.no_grad():  # the rule, computed by hand on the diffusers module
        z = m.module.encode(pad_video(x, padded)).latent_dist.mode()
        ref = m.module.decode(z).sample[:, :, :6, :21, :35].clamp(-1, 1)
    assert torch.allclose(tokens.latent, z) and torch.allclose(out, ref, atol=1e-6)
    assert torch.equal(m.encode(x).latent, tokens.latent)  # deterministic


@pytest.mark.parametrize("name", ["wan-vae", "ltx-vae"])
def test_features_are_the_latent_grid(tiny, name):
    m = MODELS.get(name)(path=str(tiny[name]))
    x = _clip(b=2, t=9, h=40, w=72)
    f = m.features(x, "last")
    z = m.encode(x).latent
    assert torch.equal(f, z.permute(0, 2, 3, 4, 1)) and f.shape[-1] == 4
    assert m.feature_stride("first") == m.metadata.compression
    with pytest.raises(ValueError, match="one latent level"):
        m.features(x, 1)


def test_posterior_draws_are_seeded_per_clip(tiny):
    path = str(tiny["hunyuan-vae"])
    a, b = _clip(seed=1, t=5, h=16, w=16), _clip(seed=2, t=5, h=16, w=16)
    mode = MODELS.get("hunyuan-vae")(path=path).encode(a).latent
    drawn = MODELS.get("hunyuan-vae")(path=path, sample=True, seed=3)
    alone = drawn.encode(a).latent
    batched = drawn.encode(torch.cat([b, a])).latent[1:]
    assert not torch.allclose(alone, mode) and torch.allclose(alone, batched, atol=1e-5)
    other_seed = MODELS.get("hunyuan-vae")(path=path, sample=True, seed=4).encode(a).latent
    assert not torch.allclose(alone, other_seed)
    assert torch.equal(drawn.features(a), mode.permute(0, 2, 3, 4, 1))  # features stay the mode


def test_tile_args_reach_the_class_and_tile_large_inputs(tiny):
    path = str(tiny["wan-vae"])
    whole = MODELS.get("wan-vae")(path=path, tiling=False)
    tiled = MODELS.get("wan-vae")(path=path, tile_height=32, tile_width=32, tile_stride_height=24,
                                  tile_stride_width=24)
    assert tiled.module.use_tiling and tiled.module.tile_sample_min_height == 32
    assert tiled.module.tile_sample_stride_width == 24 and not whole.module.use_tiling
    assert tiled.config()["tile_height"] == 32 and "path" not in tiled.config()
    x = _clip(t=1, h=48, w=64)
    a, b = whole.reconstruct(x)[1], tiled.reconstruct(x)[1]
    assert a.shape == b.shape == x.shape and not torch.allclose(a, b)  # the tiles were used
    with pytest.raises(ValueError, match="tile_frames"):
        MODELS.get("wan-vae")(path=path, tile_frames=8)
    cog = MODELS.get("cogvideox-vae")(path=str(tiny["cogvideox-vae"]), tile_height=64, tile_width=96,
                                      tile_stride_height=48, tile_stride_width=80)
    assert cog.module.tile_overlap_factor_height == pytest.approx(0.25)
    assert cog.module.tile_overlap_factor_width == pytest.approx(1 / 6)


def test_timestep_conditioned_ltx_decoder(tmp_path):
    path = str(save_tiny_vae("ltx-vae", tmp_path / "ltx", timestep_conditioning=True))
    x = _clip(t=9, h=32, w=32)
    plain = MODELS.get("ltx-vae")(path=path)
    late = MODELS.get("ltx-vae")(path=path, decode_timestep=0.05, decode_noise_scale=0.025)
    assert plain.reconstruct(x)[1].shape == x.shape
    assert not torch.allclose(plain.reconstruct(x)[1], late.reconstruct(x)[1])
    assert torch.equal(late.reconstruct(x)[1], late.reconstruct(x)[1])  # the decode noise is seeded per clip


# -- loading ------------------------------------------------------------------------------------------------------
def test_missing_folder_names_the_folder_and_where_to_get_it(tmp_path, tiny):
    with pytest.raises(MissingDataError) as exc:
        MODELS.get("cogvideox-vae")(path=str(tmp_path / "nowhere"))
    msg = str(exc.value)
    assert str(tmp_path / "nowhere") in msg and "THUDM/CogVideoX-2b" in msg and "path=" in msg
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text('{"_class_name": "AutoencoderKLWan"}')
    with pytest.raises(MissingDataError, match="diffusion_pytorch_model.safetensors"):
        MODELS.get("wan-vae")(path=str(tmp_path / "empty"))
    with pytest.raises(MissingDataError, match="describes a AutoencoderKLWan, not a AutoencoderKLHunyuanVideo"):
        MODELS.get("hunyuan-vae")(path=str(tiny["wan-vae"]))
    with pytest.raises(MissingDataError, match="Wan-AI/Wan2.1-T2V-1.3B-Diffusers"):
        MODELS.get("wan-vae")()  # default folder under the (empty) test weights folder


def test_repository_root_is_accepted_and_weights_are_hashed(tmp_path):
    vae = save_tiny_vae("wan-vae", tmp_path / "Wan2.1" / "vae")
    m = MODELS.get("wan-vae")(path=str(tmp_path / "Wan2.1"))
    assert m.folder == vae
    expected = {f: hashlib.sha256((vae / f).read_bytes()).hexdigest()
                for f in ("config.json", "diffusion_pytorch_model.safetensors")}
    assert m.weight_hashes() == expected
    assert m.num_parameters() == sum(p.numel() for p in m.module.parameters()) > 1000
    with pytest.raises(ValueError, match="unknown model args"):
        MODELS.get("wan-vae")(path=str(vae), tile_hieght=3)


# -- end to end ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILIES)
def test_harness_run_end_to_end(tmp_path, tiny, ucf_mini, name):
    code = main(["run", "--task", "ucf101-recon", "--model", name, "--model-arg", f"path={tiny[name]}", "--limit",
                 "2", "--results", str(tmp_path), "--cache", str(tmp_path / "cache"), "--no-progress"])
    assert code == 0
    (path,) = tmp_path.glob(f"{name}/ucf101-recon@v*/*/result.json")
    result = read_json(path)
    assert result["status"] == "complete" and result["task"]["data"]["n_evaluated"] == 2
    m = result["metrics"]
    assert m["bpp"]["value"] is None and "continuous latent" in m["bpp"]["reason"]
    t_f, s_f, step = GEOMETRY[name]
    latent = 4 * (1 + (next_valid_frames(17, step) - 1) // t_f) * (next_multiple(128, s_f) // s_f) ** 2
    assert m["latent_elements"]["value"] == latent
    assert 0 < m["psnr_frame"]["value"] < 40 and 0 <= m["ssim"]["value"] <= 1
    model = result["model"]
    assert model["parameters"] > 1000 and model["metadata"]["compression"] == [t_f, s_f, s_f]
    assert model["metadata"]["discrete"] is False and set(model["weights"]) == {
        "config.json", "diffusion_pytorch_model.safetensors"}
    assert "path" not in model["args"]
