"""The semantic trunk (models/pyratok/trunk.py): its grids are the encoder taps', it is causal in time, adding it to
a trained model leaves the codes unchanged until it trains, and the alignment loss trains it."""
import pytest
import torch

from models.pyratok.config import get_config
from models.pyratok.model import PyraTokModel
from models.pyratok.trunk import SemanticTrunk


def test_the_trunk_outputs_on_every_tap_grid_and_is_causal():
    torch.manual_seed(0)
    trunk = SemanticTrunk(8, [False, True, True], depth=2).eval()
    assert trunk.strides == [(1, 2, 2), (2, 4, 4), (4, 8, 8)] and trunk.channels == [8, 16, 32]
    for frames in (1, 5, 9, 17):
        out = trunk(torch.randn(1, 3, frames, 32, 48))
        assert {s: tuple(f.shape[2:]) for s, f in out.items()} == {
            (1, 2, 2): (frames, 16, 24), (2, 4, 4): (1 + (frames - 1) // 2, 8, 12),
            (4, 8, 8): (1 + (frames - 1) // 4, 4, 6)}
    x = torch.randn(1, 3, 9, 32, 32)
    later = x.clone()
    later[:, :, 5:] = torch.randn(1, 3, 4, 32, 32)  # frames 5-8 changed: latent step 2 (frames 5-8) only
    a, b = trunk(x)[(4, 8, 8)], trunk(later)[(4, 8, 8)]
    assert torch.equal(a[:, :, :2], b[:, :, :2]) and not torch.equal(a[:, :, 2], b[:, :, 2])
    with pytest.raises(ValueError, match="no output at stride"):
        trunk.channels_at((1, 4, 4))


def small_config(**overrides):
    cfg, _ = get_config("tiny", {"backbone": {"base_dim": 8, "z_dim": 16, "dim_mult": [1, 2, 4, 4],
                                              "num_res_blocks": 1, "temperal_downsample": [False, True, True]},
                                 "init": "random", "text_encoder": "minilm", **overrides})
    return cfg


def test_a_fresh_trunk_changes_no_code_and_the_alignment_loss_trains_it():
    torch.manual_seed(0)
    plain = PyraTokModel(small_config()).eval()
    with_trunk = PyraTokModel(small_config(semantic_trunk=8)).eval()
    missing, unexpected = with_trunk.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith(("trunk.", "quantizer.semantic_in.")) for k in missing)
    x = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    text = plain.text_adapter.null_context(2, x.device)
    a, b = plain.quantize(x, text), with_trunk.quantize(x, text)
    assert all(torch.equal(la.z, lb.z) for la, lb in zip(a.levels, b.levels))
    # the projections start at zero, so the first gradient reaches them (and through them the trunk afterwards)
    with_trunk.train()
    q = with_trunk.quantize(x, text)
    loss = sum(lv.z.pow(2).mean() for lv in q.levels)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in with_trunk.quantizer.semantic_in.parameters()
               if p.dim() > 1)
    with torch.no_grad():
        for proj in with_trunk.quantizer.semantic_in:
            proj.weight.normal_(0, 0.1)
    with_trunk.zero_grad()
    sum(lv.z.pow(2).mean() for lv in with_trunk.quantize(x, text).levels).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in with_trunk.trunk.parameters())


def test_a_stage_without_reconstruction_keeps_the_last_levels_trunk_projection_frozen_and_zero():
    from models.pyratok.train import apply_freeze, check_decoded_path_frozen

    model = PyraTokModel(small_config(semantic_trunk=8))
    last = len(model.quantizer.blocks) - 1
    apply_freeze(model, ["backbone", "quantizer.blocks.last", "quantizer.semantic_in.last", "text_adapter.null"])
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert {f"quantizer.semantic_in.{last}.weight", f"quantizer.semantic_in.{last}.bias"} <= frozen
    assert "quantizer.semantic_in.0.weight" not in frozen and "trunk.stages.0.conv.weight" not in frozen
    with torch.no_grad():
        model.quantizer.blocks[-1].prev.weight.zero_()
    check_decoded_path_frozen(model)  # the trunk trains; the decoded path cannot move
    with torch.no_grad():
        model.quantizer.semantic_in[last].weight[0, 0] = 1.0
    with pytest.raises(ValueError, match="reads the semantic trunk"):
        check_decoded_path_frozen(model)
    model.quantizer.semantic_in[last].weight.requires_grad_(True)
    with pytest.raises(ValueError, match="decoded path would train"):
        check_decoded_path_frozen(model)


def codes_of_a_clip_and_its_later_frames_changed(cfg):
    """LaPQ output of a 9-frame clip and of the same clip with frames 5-8 replaced, through a model whose trunk
    projections are random (non-zero), for causality checks."""
    torch.manual_seed(0)
    model = PyraTokModel(cfg).eval()
    with torch.no_grad():
        for proj in model.quantizer.semantic_in:
            proj.weight.normal_(0, 0.5)
        x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
        later = x.clone()
        later[:, :, 5:] = torch.rand(1, 3, 4, 32, 32) * 2 - 1
        return model.quantize(x, None), model.quantize(later, None)


def test_a_trunk_reading_a_downsampled_clip_serves_the_same_levels():
    torch.manual_seed(0)
    trunk = SemanticTrunk(8, [False, True, True], depth=1, input_scale=2).eval()
    assert trunk.strides == [(1, 2, 2), (2, 4, 4), (4, 8, 8)]  # keyed by the encoder stride each output serves
    out = trunk(torch.randn(1, 3, 9, 32, 48))
    assert {s: tuple(f.shape[2:]) for s, f in out.items()} == {
        (1, 2, 2): (9, 8, 12), (2, 4, 4): (5, 4, 6), (4, 8, 8): (3, 2, 3)}  # twice coarser in space
    # it sees the 2x2 area means: a clip and its nearest-upsampled half-resolution copy give the same features
    half = torch.randn(1, 3, 5, 16, 16)
    full = half.repeat_interleave(2, 3).repeat_interleave(2, 4)
    plain = SemanticTrunk(8, [False, True, True], depth=1).eval()
    plain.load_state_dict(trunk.state_dict())
    assert all(torch.allclose(trunk(full)[s], plain(half)[s], atol=1e-6) for s in trunk.strides)
    # inside PyraTok each level gets the features on its own grid (nearest), and the whole path stays causal
    a, b = codes_of_a_clip_and_its_later_frames_changed(small_config(semantic_trunk=8, semantic_trunk_scale=2))
    assert [tuple(lv.z.shape[2:]) for lv in a.levels] == [(9, 16, 16), (5, 8, 8), (3, 4, 4), (3, 4, 4)]
    assert torch.equal(a.levels[-1].z[:, :, :2], b.levels[-1].z[:, :, :2])
    assert not torch.equal(a.levels[-1].z[:, :, 2], b.levels[-1].z[:, :, 2])


def test_training_reads_the_trunk_and_decodes_only_the_first_recon_clips():
    torch.manual_seed(0)
    model = PyraTokModel(small_config(semantic_trunk=8, recon_clips=1, align_negatives=2, ar_window=16,
                                      mask_prob=0.0, aux_warmup=0)).train()
    video = torch.rand(3, 3, 5, 32, 32) * 2 - 1
    captions = ["a red square slides left", None, "a blue circle bounces"]
    terms = model.training_losses(video, captions, ["a green star spins"], torch.Generator().manual_seed(0))
    assert terms["_recon"].shape == (1, *video.shape[1:])  # one clip decoded for the reconstruction terms
    assert float(terms["text_align"].detach()) > 0
    terms["total"].backward()
    grads = [p.grad for p in model.quantizer.semantic_in.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)  # the trunk's features reach the loss


def test_the_structured_start_codes_colour_on_colour_bits_and_leaves_the_rest_at_zero():
    from models.pyratok.config import TrainConfig
    from models.pyratok.train import build_data, structured_init

    # 16 bits = the latent's 16 channels: the decoder's first conv reads the bits themselves
    cfg = small_config(init="downsample", codebook_bits=16, residual_stages=2, colour_bits=3, semantic_trunk=8)
    model = PyraTokModel(cfg)
    tcfg = TrainConfig(scene_fraction=1.0)
    err = structured_init(model, build_data("scenes", tcfg, None, None), tcfg)
    to_bits = model.quantizer.blocks[-1].to_bits
    assert to_bits.weight[:3].abs().sum() > 0 and torch.all(to_bits.weight[3:] == 0)
    assert torch.all(to_bits.bias[3:] == 0)
    reads = model.backbone.vae.decoder.conv_in.weight[:3, :, -1, 1, 1]  # the read-out of each bit channel
    assert reads[:, :3].abs().sum() > 0 and torch.all(reads[:, 3:] == 0)  # the constant channels are not read
    assert 0 < err < 0.2  # 3 channels x 2 stages still read the colours back


@pytest.mark.slow
def test_the_lang_recipe_starts_structured_with_a_pretrained_frozen_trunk(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from models.pyratok.train import train

    small = {"base_dim": 8, "levels": 2, "steps": 1, "batch_size": 3, "recon_clips": 1, "crop": 32,
             "clip_frames": 5, "align_negatives": 2, "ar_window": 16, "threads": 0, "log_every": 1}
    with pytest.raises(ValueError, match="no pretrained trunk"):
        train("tiny-lang", data="scenes", out=str(tmp_path / "refused"), model_args=dict(small), progress=False)
    torch.manual_seed(1)
    pretrained = SemanticTrunk(32, [False, True, True], depth=2, input_scale=2)
    save_file({f"trunk.{k}": v for k, v in pretrained.state_dict().items()}, str(tmp_path / "trunk.safetensors"))
    out = tmp_path / "run"
    assert train("tiny-lang", data="scenes", out=str(out), progress=False,
                 model_args={**small, "init_from": str(tmp_path / "trunk.safetensors")}) == 0
    info = json.loads((out / "config.json").read_text())
    assert info["init"]["kind"] == "downsample"  # the trunk alone leaves the rest to the structured start
    assert not any(k.startswith("trunk.") for k in info["init_from"]["fresh"])
    saved = load_file(str(out / "model.safetensors"))
    assert all(torch.equal(saved[f"trunk.{k}"], v) for k, v in pretrained.state_dict().items())  # frozen
    log = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert log["psnr"] > 10 and log["text_align"] > 0


def test_causal_resample_repeats_coarse_steps_with_a_lag_and_never_reads_ahead():
    from models.pyratok.trunk import causal_resample

    x = torch.arange(3.0).reshape(1, 1, 3, 1, 1).expand(1, 1, 3, 2, 2)  # steps 0, 1, 2 of stride 4 (9 frames)
    fine = causal_resample(x, (9, 4, 4))  # stride 1: frame f reads step floor(f / 4)
    assert fine[0, 0, :, 0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2] and fine.shape == (1, 1, 9, 4, 4)
    assert causal_resample(x, (5, 2, 2))[0, 0, :, 0, 0].tolist() == [0, 0, 1, 1, 2]  # stride 2
    assert causal_resample(x[:, :, :1], (5, 2, 2))[0, 0, :, 0, 0].tolist() == [0] * 5  # one frame
    assert torch.equal(causal_resample(x, (3, 2, 2)), x)


def test_every_level_can_read_the_deepest_trunk_output_causally():
    torch.manual_seed(0)
    cfg = small_config(semantic_trunk=8, semantic_trunk_source="deepest")
    model = PyraTokModel(cfg)
    assert all(p.weight.shape[1] == model.trunk.channels[-1] for p in model.quantizer.semantic_in)
    a, b = codes_of_a_clip_and_its_later_frames_changed(cfg)
    assert torch.equal(a.levels[0].z[:, :, :5], b.levels[0].z[:, :, :5])  # frame 4 reads deep step 1 = frames 1-4
    assert not torch.equal(a.levels[0].z[:, :, 8], b.levels[0].z[:, :, 8])
    with pytest.raises(ValueError, match="semantic_trunk_source"):
        PyraTokModel(small_config(semantic_trunk=8, semantic_trunk_source="middle"))


def test_into_the_code_the_trunk_adds_a_linear_read_out_to_the_pre_sign_values():
    torch.manual_seed(0)
    model = PyraTokModel(small_config(semantic_trunk=8, semantic_trunk_source="deepest", semantic_into="code",
                                      codebook_bits=6)).eval()
    assert all(p.weight.shape[:2] == (6, model.trunk.channels[-1]) for p in model.quantizer.semantic_in)
    x = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        before = model.quantize(x, None).levels[-1].z
        model.quantizer.semantic_in[-1].weight.normal_(0, 0.5)
        after = model.quantize(x, None)
        read_out = model.quantizer.semantic_in[-1](model.trunk(x)[model.trunk.strides[-1]])
    assert torch.allclose(after.levels[-1].z - before, read_out, atol=1e-5)
    assert torch.equal(after.levels[-1].stage_codes[0], torch.where(after.levels[-1].z >= 0, 1.0, -1.0))
    with pytest.raises(ValueError, match="semantic_into"):
        PyraTokModel(small_config(semantic_trunk=8, semantic_into="bits"))


def test_attention_to_a_single_null_token_takes_the_exact_shortcut():
    from models.pyratok.lapq import LaPQLevel
    from models.tokenizer.quantizer import TextContext

    torch.manual_seed(0)
    level = LaPQLevel(8, 16, 4, 12, 2, has_prev=False, attend_text=True, text_scale=0.7)
    with torch.no_grad():
        level.attn.out_proj.weight.normal_()
    ctx = torch.randn(2, 1, 12)
    one = TextContext(ctx, torch.ones(2, 1, dtype=torch.bool), ctx[:, 0], torch.zeros(2, dtype=torch.bool))
    feat = torch.randn(2, 8, 3, 4, 4)
    fast = level(feat, None, one)
    k = level.text_norm(level.text_kv(ctx))
    x = level.norm(level.lateral(feat).flatten(2).transpose(1, 2))
    full, _ = level.attn(x, k, k, need_weights=False)
    slow = level.to_bits(level.out_norm(x + 0.7 * full)).transpose(1, 2).reshape(2, 4, 3, 4, 4)
    assert torch.allclose(fast, slow, atol=1e-5)
