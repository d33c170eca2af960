"""The bundled PyraTok checkpoint through the harness: `harness run --task ucf101-recon --model pyratok --limit`,
bits per pixel of a 16-bit 4x8x8 tokenizer, weight hashes, tiled inference against untiled output, embed_text."""
import json
import math
from pathlib import Path

import pytest
import torch

from harness.hashing import sha256_file
from models.pyratok.adapter import BUNDLED


@pytest.fixture(scope="module")
def bundled():
    from models.pyratok.adapter import PyraTokAdapter

    return PyraTokAdapter()


def test_the_bundled_checkpoint_is_small_and_documented():
    w, j = Path(f"{BUNDLED}.safetensors"), Path(f"{BUNDLED}.json")
    assert w.exists() and j.exists() and w.stat().st_size <= 20 * 2 ** 20
    info = json.loads(j.read_text())
    cfg = info["config"]
    assert cfg["levels"] == 4 and (cfg["codebook_bits"], cfg["residual_stages"]) == (16, 2) and info["step"] > 0
    assert cfg["semantic_trunk"] and info["config_name"] == "tiny-lang"  # the recipe docs/pyratok.md records
    assert info["weights"] == w.name


def test_tiled_inference_matches_untiled_without_seams(bundled):
    torch.manual_seed(0)
    from tasks.mini.scenes import Background, Scene, SceneObject, render
    from harness.video import to_model_input

    scene = Scene(Background("brick wall", ("orange", "white")), (SceneObject("circle", "blue", "slides right"),),
                  9, 64, 96, seed=5)
    x = to_model_input(torch.from_numpy(render(scene)[0]))[None]
    bundled.args.update(tiling="off")
    full = bundled.decode(bundled.encode(x))
    bundled.args.update(tiling="on", tile=64, overlap=32)
    try:
        tokens = bundled.encode(x)
        tiled = bundled.decode(tokens)
    finally:
        bundled.args.update(tiling="auto", tile=256, overlap=64)
    assert tiled.shape == full.shape
    assert tokens.bits.item() == 3 * 8 * 12 * 32  # one code grid: the same bits as untiled
    err = (tiled - full).abs()
    seam = err[..., 32:64].mean()  # the columns where the two tiles overlap
    assert err.mean() < 0.03 and seam < 0.05
    psnr_gap = 10 * math.log10(4 / max(float(((tiled - full) ** 2).mean()), 1e-12))
    assert psnr_gap > 30  # tiled output within 30 dB PSNR of untiled


def test_embed_text_lives_in_the_code_space(bundled):
    e = bundled.embed_text(["a red square", "a blue circle", "a red square"])
    assert e.shape == (3, 16) and torch.allclose(e[0], e[2])  # the code space: 16 bit channels
    assert not torch.allclose(e[0], e[1])
    assert "text_encoder/model.safetensors" in bundled.weight_hashes()


def test_generate_videos_batches_the_prior_and_returns_the_codes_it_decoded(bundled):
    """One batch, one generator per video: each video equals the one generated alone with its seed, and the returned
    tokens are the last-level codes the decoder read (decoding them gives the video back)."""
    prompts = ["a red square slides left over a striped floor", "a circle"]  # different lengths: padding in the batch
    out = bundled.generate_videos(prompts, [3, 4], 5, 32, 48)
    assert out.video.shape == (2, 3, 5, 32, 48) and out.video.abs().max() <= 1
    names = [lv.name for lv in out.tokens.levels]
    assert names == [f"l4.s{i}" for i in range(2)] and all(lv.bits.shape == (2, 2, 4, 6, 16) for lv in out.tokens.levels)
    for i in range(2):
        alone = bundled.generate_videos([prompts[i]], [3 + i], 5, 32, 48)
        assert torch.allclose(alone.video[0], out.video[i], atol=1e-4)
        assert all(torch.equal(a.bits[0], b.bits[i]) for a, b in zip(alone.tokens.levels, out.tokens.levels))
    replay = bundled.decode(out.tokens)
    assert torch.allclose(replay, out.video, atol=1e-4)
    assert not torch.allclose(out.video[0], out.video[1])


@pytest.mark.slow
def test_harness_run_ucf101_recon_with_the_bundled_checkpoint(tmp_path, ucf_mini):
    from harness.cli import main

    assert main(["run", "--task", "ucf101-recon", "--model", "pyratok", "--limit", "2", "--results", str(tmp_path),
                 "--no-progress"]) == 0
    res = json.loads(next(tmp_path.glob("pyratok/ucf101-recon@v1/*/result.json")).read_text())
    m = res["metrics"]
    assert m["bpp"]["value"] == pytest.approx(5 * 16 * 16 * 32 / (17 * 128 * 128))  # 0.147: 16 bits x 2 stages
    assert 10 < m["psnr_frame"]["value"] < 60 and 0 < m["ssim"]["value"] <= 1
    # every residual stage is a code at each cell (as RVQ's stages are)
    assert m["tokens_per_clip"]["value"] == 2 * (17 * 64 * 64 + 9 * 32 * 32 + 2 * 5 * 16 * 16)
    for level in ("l1", "l2", "l3", "l4"):
        assert all(f"codebook/{level}.s{i}/used_fraction" in m for i in range(2))
    assert res["model"]["weights"]["weights"] == sha256_file(f"{BUNDLED}.safetensors")
    assert res["task"]["data"]["limited"] is True and res["model"]["metadata"]["code_bits"] == 32
