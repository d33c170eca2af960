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
