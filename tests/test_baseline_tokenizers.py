"""The learned baselines as models and adapters: the same recipe as PyraTok's tiny configuration, exact bits,
decode from the codes alone, features, tiling, training + checkpoint round trip + export, and (slow) each bundled
checkpoint through `harness run --task ucf101-recon --limit 2`."""
import json

import pytest
import torch

from harness.hashing import sha256_file

FAMILIES = ("lfq", "bsq", "vq", "rvq", "fsq")
SMALL = {"base_dim": 8, "steps": 2, "batch_size": 2, "crop": 32, "clip_frames": 5, "log_every": 1, "save_every": 1,
         "threads": 0}


def clip(t=9, h=32, w=32, seed=0):
    from harness.video import to_model_input
    from tests.conftest import moving_frames

    return to_model_input(torch.from_numpy(moving_frames(t, h, w, seed)))[None]


def fresh(family, **kw):
    from harness.registry import MODELS

    return MODELS.get(family)(checkpoint="none", base_dim=8, **kw)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_recipe_is_pyratoks_tiny_and_only_the_quantizer_differs(family):
    from models.baselines.tokenizers.config import get_config
    from models.pyratok.config import get_config as pyratok_config

    cfg, tcfg = get_config(family, "tiny")
    pcfg, ptcfg = pyratok_config("tiny")
    assert cfg.backbone == pcfg.backbone and cfg.init == pcfg.init == "downsample" and cfg.vae == pcfg.vae
    assert tcfg == ptcfg  # optimizer, schedule, steps, batch, crops, data mixture and seed
    assert (cfg.w_recon, cfg.w_quant, cfg.w_l1, cfg.w_ssim) == (pcfg.w_recon, pcfg.w_codebook, pcfg.w_l1,
                                                                pcfg.w_ssim)
    # 16 bits per cell: the paper's PyraTok layout; the bundled PyraTok codes 4 bits x 5 residual stages (20)
    assert cfg.bits_per_cell == 16 and pcfg.codebook_bits * pcfg.residual_stages == 20
    # the same parts stay frozen: the encoder side, and the quantizer that reads it (PyraTok's decoded last level)
    assert pcfg.freeze == ["backbone.vae.encoder", "backbone.vae.quant_conv", "quantizer.blocks.3"]
    assert cfg.freeze == ["backbone.vae.encoder", "backbone.vae.quant_conv", "quantizer.project_in"]
    overridden, t2 = get_config(family, "tiny", {"steps": "300", "lr": "3e-4", "base_dim": 8})
    assert t2.steps == 300 and t2.lr == 3e-4 and overridden.backbone.base_dim == 8


@pytest.mark.parametrize("family,levels,order", [
    ("lfq", [("latent", 65536)], "lsb"), ("bsq", [("latent", 65536)], "msb"), ("vq", [("latent", 65536)], None),
    ("rvq", [("latent.s0", 256), ("latent.s1", 256)], None), ("fsq", [("latent", 64000)], None)])
def test_encode_counts_exact_bits_and_decode_reads_only_the_codes(family, levels, order):
    torch.manual_seed(0)
    a = fresh(family)
    x = clip()  # 9x32x32 -> 3x4x4 latent cells
    tokens = a.encode(x)
    assert [(lv.name, lv.codebook_size) for lv in tokens.levels] == levels
    assert tokens.bits.tolist() == [3 * 4 * 4 * 16] and a.metadata.code_bits == 16
    if order:
        assert all(lv.bit_order == order and lv.bits.shape == (1, 3, 4, 4, 16) for lv in tokens.levels)
    out = a.decode(tokens)
    assert out.shape == x.shape and out.abs().max() <= 1
    with torch.no_grad():  # decode rebuilds exactly the value the model's own forward pass decodes
        recon, _ = a.model(a.model.backbone.pad_input(x), clamp=True)
    assert torch.equal(out, recon)
    # change one code: the output changes (the bits counted are the bits read)
    lv = tokens.levels[-1]
    if lv.bits is not None:
        lv.bits[0, 1, 2, 2] ^= 1
    else:
        lv.indices[0, 1, 2, 2] = (lv.indices[0, 1, 2, 2] + 1) % lv.codebook_size
    assert not torch.equal(a.decode(tokens), out)


@pytest.mark.parametrize("family,dim", [("lfq", 16), ("bsq", 16), ("vq", 8), ("fsq", 6)])
def test_features_are_the_latent_grid(family, dim):
    a = fresh(family)
    x = clip(t=9, h=40, w=48)
    f = a.features(x, "last")
    assert f.shape == (1, 3, 5, 6, dim) and a.feature_stride("last") == (4, 8, 8)
    assert torch.equal(a.features(x, 0), f)
    if family == "bsq":
        assert torch.allclose(f.norm(dim=-1), torch.ones(1, 3, 5, 6), atol=1e-5)  # on the unit sphere
    a.args["feature_kind"] = "quantized"
    q = a.features(x)
    tokens = a.encode(x)
    assert torch.equal(q, a.model.quantizer.dequantize(tokens.levels).permute(0, 2, 3, 4, 1))
    with pytest.raises(ValueError, match="one feature level"):
        a.features(x, 2)


def test_no_text_capability_so_text_tasks_do_not_apply():
    from harness.registry import MODELS
    from models.base import EMBED_TEXT, FEATURES, RECONSTRUCT

    for family in FAMILIES:
        cls = MODELS.get(family)
        assert cls.capabilities == frozenset({RECONSTRUCT, FEATURES}) and EMBED_TEXT not in cls.capabilities
        assert cls.trainer.endswith(f"train_{family}")


def test_tiled_encoding_keeps_one_code_grid_and_matches_untiled():
    torch.manual_seed(0)
    a = fresh("fsq", init="downsample")
    a.model.structured_init(clip(17, 64, 64))
    x = clip(9, 64, 96, seed=3)
    a.args.update(tiling="off")
    full = a.decode(a.encode(x))
    a.args.update(tiling="on", tile=64, overlap=32)
    tokens = a.encode(x)
    tiled = a.decode(tokens)
    assert tokens.bits.item() == 3 * 8 * 12 * 16
    assert (tiled - full).abs().mean() < 0.03


@pytest.mark.slow
def test_train_resume_export_and_load(tmp_path):
    from models.baselines.tokenizers.adapter import VQAdapter
    from models.baselines.tokenizers.train import train

    out = tmp_path / "run"
    args = {**SMALL, "codebook_size": 1024, "dead_after": 1}
    assert train("vq", "tiny", data="scenes", out=str(out), model_args=dict(args), progress=False) == 0
    info = json.loads((out / "config.json").read_text())
    assert info["step"] == 2 and info["final"] and info["model"] == "vq" and info["init"]["kind"] == "downsample"
    assert info["init"]["readout_rms"] < 0.05
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(k in rows[-1] for k in ("total", "l1", "ssim", "commitment", "restarted", "batch_codes", "psnr"))
    assert rows[-1]["restarted"] > 0  # dead_after=1: codes not chosen in a step are restarted
    before = (out / "model.safetensors").read_bytes()
    assert train("vq", "tiny", data="scenes", out=str(out), model_args={**args, "steps": 3}, progress=False) == 0
    assert json.loads((out / "config.json").read_text())["step"] == 3
    assert (out / "model.safetensors").read_bytes() != before
    with pytest.raises(ValueError, match="different configuration"):
        train("vq", "tiny", data="scenes", out=str(out), model_args={**args, "codebook_size": 512}, progress=False)

    # the training folder and an exported bundle load to the same model; the bundle has no EMA statistics
    from safetensors.torch import load_file

    from models.baselines.tokenizers.train import export_bundle

    w, _ = export_bundle(out, tmp_path / "bundle" / "vq")
    assert not any(k.endswith(("ema_sum", "ema_count", "idle")) for k in load_file(str(w)))
    from_folder, from_bundle = VQAdapter(checkpoint=str(out)), VQAdapter(checkpoint=str(tmp_path / "bundle" / "vq"))
    saved = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(from_folder.model.state_dict()[k], v) for k, v in saved.items())
    x = clip(5, 32, 32)
    t1, t2 = from_folder.encode(x), from_bundle.encode(x)
    assert torch.equal(t1.levels[0].indices, t2.levels[0].indices)
    assert torch.equal(from_folder.decode(t1), from_bundle.decode(t2))
    assert from_bundle.weight_hashes()["weights"] == sha256_file(w)
    assert from_bundle.training_record["step"] == 3
    with pytest.raises(ValueError, match="not lfq"):
        from models.baselines.tokenizers.adapter import LFQAdapter

        LFQAdapter(checkpoint=str(out))


def test_a_missing_checkpoint_names_the_train_command(tmp_path):
    from harness.errors import MissingDataError
    from models.baselines.tokenizers.adapter import BSQAdapter

    with pytest.raises(MissingDataError, match="harness train --model bsq"):
        BSQAdapter(checkpoint=str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="untrained model"):
        BSQAdapter(bits=18)  # a knob of the architecture cannot change a trained checkpoint


@pytest.mark.parametrize("family", FAMILIES)
def test_the_bundled_checkpoint_is_small_and_documented(family):
    from models.baselines.tokenizers.adapter import WEIGHTS_DIR

    w, j = WEIGHTS_DIR / f"{family}-tiny.safetensors", WEIGHTS_DIR / f"{family}-tiny.json"
    assert w.exists() and j.exists()
    limit = 6 if family == "vq" else 5  # vq: its 2^16 x 8 codebook adds 1 MiB (float16)
    assert w.stat().st_size <= limit * 2 ** 20
    info = json.loads(j.read_text())
    assert info["config"]["family"] == family and info["step"] > 0 and info["weights"] == w.name
    assert info["config_name"] == "tiny" and info["dtype"] == "float16"


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_harness_run_ucf101_recon_with_the_bundled_checkpoint(tmp_path, ucf_mini, family):
    from harness.cli import main
    from models.baselines.tokenizers.adapter import WEIGHTS_DIR

    assert main(["run", "--task", "ucf101-recon", "--model", family, "--limit", "2", "--results", str(tmp_path),
                 "--no-progress"]) == 0
    res = json.loads(next(tmp_path.glob(f"{family}/ucf101-recon@v1/*/result.json")).read_text())
    m = res["metrics"]
    assert m["bpp"]["value"] == pytest.approx(5 * 16 * 16 * 16 / (17 * 128 * 128))  # 16 bits per 4x8x8 cell
    assert 10 < m["psnr_frame"]["value"] < 60 and 0 < m["ssim"]["value"] <= 1
    names = ["latent.s0", "latent.s1"] if family == "rvq" else ["latent"]
    for name in names:
        assert 0 < m[f"codebook/{name}/used_fraction"]["value"] <= 1
    assert res["model"]["weights"]["weights"] == sha256_file(WEIGHTS_DIR / f"{family}-tiny.safetensors")
    assert res["task"]["data"]["limited"] is True and res["model"]["metadata"]["code_bits"] == 16
