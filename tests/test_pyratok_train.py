"""Training: a few steps of a tiny PyraTok through the trainer, checkpoint round trip, resume, export as a bundle and
loading that bundle through the adapter; configuration names and ablation knobs."""
import json

import pytest
import torch

from harness.hashing import sha256_file

SMALL = {"base_dim": 8, "levels": 2, "steps": 2, "batch_size": 2, "crop": 32, "clip_frames": 5, "log_every": 1,
         "save_every": 1, "align_negatives": 4, "ar_window": 32, "threads": 0}


@pytest.mark.slow
def test_train_resume_export_and_load(tmp_path):
    from models.pyratok.adapter import PyraTokAdapter
    from models.pyratok.config import PyraTokConfig
    from models.pyratok.model import PyraTokModel
    from models.pyratok.train import train
    from models.tokenizer.checkpoint import load_weights

    out = tmp_path / "run"
    assert train("tiny", data="scenes", out=str(out), model_args=dict(SMALL), progress=False) == 0
    info = json.loads((out / "config.json").read_text())
    assert info["step"] == 2 and info["final"] and info["model"] == "pyratok"
    assert info["lpips"]["used"] in (True, False) and info["lpips"]["reason"]
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("total", "l1", "ssim", "commitment", "entropy", "hierarchical", "text_align", "text_codebook", "ar",
                "drift", "psnr", "lr"):
        assert key in rows[-1]
    assert all(torch.isfinite(torch.tensor(r["total"])) for r in rows)
    before = (out / "model.safetensors").read_bytes()

    # resume: continues at step 2 and runs one more step
    assert train("tiny", data="scenes", out=str(out), model_args={**SMALL, "steps": 3}, progress=False) == 0
    assert json.loads((out / "config.json").read_text())["step"] == 3
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert (out / "model.safetensors").read_bytes() != before

    # a different configuration refuses to resume into the same folder
    with pytest.raises(ValueError, match="different configuration"):
        train("tiny", data="scenes", out=str(out), model_args={**SMALL, "levels": 3}, progress=False)

    # round trip: weights load into a fresh model exactly
    cfg = PyraTokConfig.from_dict(json.loads((out / "config.json").read_text())["config"])
    fresh = PyraTokModel(cfg)
    load_weights(fresh, out / "model.safetensors")
    from safetensors.torch import load_file

    saved = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())

    # export a bundle and load it through the adapter
    from models.pyratok.train import export_bundle

    w, j = export_bundle(out, tmp_path / "bundle" / "pt")
    adapter = PyraTokAdapter(checkpoint=str(tmp_path / "bundle" / "pt"))
    # model args given with a checkpoint must match it (a sweep passes its grid values next to the checkpoint)
    PyraTokAdapter(checkpoint=str(tmp_path / "bundle" / "pt"), levels="2", steps="3")
    with pytest.raises(ValueError, match="has levels=2, but the run asks for levels='3'"):
        PyraTokAdapter(checkpoint=str(tmp_path / "bundle" / "pt"), levels="3")
    assert adapter.weight_hashes()["weights"] == sha256_file(w)
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    tokens = adapter.encode(x)
    cfg = adapter.model.cfg  # tiny: 4 bits x 5 residual stages per token, read by the decoder at the last level
    assert (cfg.codebook_bits, cfg.residual_stages) == (4, 5)
    assert tokens.bits.item() == 2 * 4 * 4 * 20 and adapter.decode(tokens).shape == x.shape


@pytest.mark.slow
def test_lora_training_keeps_the_encoder_frozen_and_exports_merged_kernels(tmp_path):
    """The paper's recipe: encoder frozen, LoRA factors in its blocks train; the exported bundle holds plain merged
    kernels and encodes as the LoRA model did."""
    from safetensors.torch import load_file

    from models.pyratok.adapter import PyraTokAdapter
    from models.pyratok.config import PyraTokConfig
    from models.pyratok.model import PyraTokModel
    from models.pyratok.train import attach_lora, export_bundle, train
    from models.tokenizer.checkpoint import load_weights

    out = tmp_path / "run"
    args = {**SMALL, "lora_rank": 2, "lr": 1e-2, "warmup": 1}
    assert train("tiny", data="scenes", out=str(out), model_args=args, progress=False) == 0
    info = json.loads((out / "config.json").read_text())
    assert info["lora"]["rank"] == 2 and info["lora"]["modules"] > 0
    saved = load_file(str(out / "model.safetensors"))
    b_keys = [k for k in saved if k.endswith(".lora_B")]
    assert b_keys and all(k.startswith("backbone.vae.encoder.") for k in b_keys)
    assert any(saved[k].abs().sum() > 0 for k in b_keys)  # the factors moved from their zero start
    originals = [k for k in saved if k.endswith(".parametrizations.weight.original")]
    assert "backbone.vae.encoder.conv_in.weight" in saved and originals

    # the LoRA model as trained (resumable form) against the exported, merged bundle
    cfg = PyraTokConfig.from_dict(info["config"])
    trained = PyraTokModel(cfg).eval()
    attach_lora(trained, cfg)
    load_weights(trained, out / "model.safetensors")
    w, _ = export_bundle(out, tmp_path / "bundle" / "pt")
    bundle = load_file(str(w))
    assert not any(".lora_" in k or ".original" in k for k in bundle)
    adapter = PyraTokAdapter(checkpoint=str(tmp_path / "bundle" / "pt"))
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        ref = trained.backbone.encode_taps(x, ["latent"])["latent"]
        got = adapter.model.backbone.encode_taps(x, ["latent"])["latent"]
    assert torch.allclose(ref, got, atol=1e-5)

    # resuming re-attaches LoRA before loading, and continues
    assert train("tiny", data="scenes", out=str(out), model_args={**args, "steps": 3}, progress=False) == 0
    assert json.loads((out / "config.json").read_text())["step"] == 3


def test_config_names_and_ablation_knobs():
    from models.pyratok.config import config_names, get_config

    names = config_names()
    for n in ("tiny", "paper", "tiny-levels1", "tiny-levels3", "tiny-bits10", "tiny-bits18", "tiny-align-none",
              "tiny-align-last", "tiny-align-all", "tiny-residual2"):
        assert n in names
    cfg, tcfg = get_config("tiny-bits14", {"levels": 2, "steps": 7, "align_levels": [1]})
    assert cfg.codebook_bits == 14 and cfg.levels == 2 and tcfg.steps == 7 and cfg.align_levels == [1]
    paper, _ = get_config("paper")
    assert paper.backbone.base_dim == 96 and paper.backbone.num_res_blocks == 2 and paper.levels == 4
    assert (paper.w_recon, paper.w_codebook, paper.w_ar, paper.w_drift) == (2.5, 2.5, 1.5, 0.6)
    with pytest.raises(ValueError):
        get_config("huge")
    with pytest.raises(ValueError):
        get_config("tiny", {"no_such_knob": 1})


def test_cli_train_dispatches_to_the_models_trainer(capsys):
    from harness.cli import main

    assert main(["train", "--model", "downsample", "--no-progress"]) == 2
    assert "has no trainer" in capsys.readouterr().err
