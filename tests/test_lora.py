"""LoRA as a low-rank kernel change: equal to the usual branch form, zero at the start, only the factors train, the
Wan encoder's cached causal path uses the adapted kernels, and LoRA checkpoints load merged into plain models."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.tokenizer.backbone import BackboneConfig, WanBackbone
from models.tokenizer.checkpoint import load_weights, save_weights
from models.tokenizer.lora import add_lora, lora_parameters, merge_lora_state

ENCODER_BLOCKS = ["vae.encoder.down_blocks", "vae.encoder.mid_block"]


def _randomize_factors(module: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(module):
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def test_kernel_form_equals_the_branch_form():
    """conv(x, W + s·B·A) == conv(x, W) + s · conv1x1(conv(x, A), B), for a padded 3D and a strided 2D conv."""
    torch.manual_seed(0)
    for conv, op, kw in ((nn.Conv3d(4, 6, 3, padding=1), F.conv3d, {"padding": 1}),
                         (nn.Conv2d(4, 6, 3, stride=2), F.conv2d, {"stride": 2})):
        w, b = conv.weight.detach().clone(), conv.bias.detach().clone()
        net = nn.Sequential(conv)
        add_lora(net, rank=2, alpha=4.0, prefixes=[""])
        _randomize_factors(net)
        delta = net[0].parametrizations.weight[0]
        a, bb = delta.lora_A.detach(), delta.lora_B.detach()
        x = torch.randn(2, 4, *([5, 8, 8] if op is F.conv3d else [9, 9]))
        ones = [1] * (a.ndim - 2)
        branch = op(x, w, b, **kw) + (4.0 / 2) * op(op(x, a, None, **kw), bb.view(*bb.shape, *ones))
        assert torch.allclose(net(x), branch, atol=1e-5)


def test_starts_at_the_base_model_and_trains_only_the_factors():
    torch.manual_seed(0)
    bb = WanBackbone.from_config(BackboneConfig(base_dim=8, num_res_blocks=1))
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        before = bb.encode_taps(x, ["stage1", "latent"])
    names = add_lora(bb, rank=2, alpha=32.0, prefixes=ENCODER_BLOCKS)
    assert names and all(n.startswith(tuple(ENCODER_BLOCKS)) for n in names)
    assert "vae.encoder.conv_in" not in names and not any(n.startswith("vae.decoder") for n in names)
    with torch.no_grad():
        after = bb.encode_taps(x, ["stage1", "latent"])
    assert all(torch.equal(before[k], after[k]) for k in before)  # B = 0: exactly the base model
    bb.requires_grad_(False)
    for p in lora_parameters(bb):
        p.requires_grad_(True)
    bb.encode_taps(x, ["latent"])["latent"].square().mean().backward()
    grads = {n: p.grad for n, p in bb.named_parameters() if p.grad is not None}
    assert grads and all(n.endswith((".lora_A", ".lora_B")) for n in grads)
    assert any(n.endswith(".lora_B") and g.abs().sum() > 0 for n, g in grads.items())


def test_cached_causal_encoding_uses_the_adapted_kernels_and_merges_exactly():
    """The chunked, cached encoder with LoRA equals a plain encoder holding the merged kernels (state dict merge)."""
    torch.manual_seed(0)
    cfg = BackboneConfig(base_dim=8, num_res_blocks=1)
    bb = WanBackbone.from_config(cfg).eval()
    names = add_lora(bb, rank=4, alpha=8.0, prefixes=ENCODER_BLOCKS)
    _randomize_factors(bb)
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    taps = ["stage0", "stage1", "mid", "latent"]
    with torch.no_grad():
        adapted = bb.encode_taps(x, taps)
        plain = WanBackbone.from_config(cfg).eval()
        plain.load_state_dict(merge_lora_state(bb.state_dict()))
        merged = plain.encode_taps(x, taps)
    assert all(torch.allclose(adapted[k], merged[k], atol=1e-5) for k in taps)
    torch.manual_seed(0)
    untouched = WanBackbone.from_config(cfg).eval()
    with torch.no_grad():
        assert not torch.allclose(untouched.encode_taps(x, ["latent"])["latent"], adapted["latent"], atol=1e-3)
    assert len(names) > 0 and not any(k.endswith((".lora_A", ".lora_B", ".original"))
                                      for k in plain.state_dict())


def test_a_lora_checkpoint_loads_merged_into_the_plain_model(tmp_path):
    torch.manual_seed(0)
    cfg = BackboneConfig(base_dim=8, num_res_blocks=1)
    bb = WanBackbone.from_config(cfg).eval()
    add_lora(bb, rank=2, alpha=32.0, prefixes=ENCODER_BLOCKS)
    _randomize_factors(bb, seed=1)
    save_weights(bb, tmp_path / "w.safetensors")
    plain = WanBackbone.from_config(cfg).eval()
    assert load_weights(plain, tmp_path / "w.safetensors") == ([], [])
    x = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(plain.encode_taps(x, ["latent"])["latent"], bb.encode_taps(x, ["latent"])["latent"],
                              atol=1e-5)


def test_bad_targets_and_incomplete_states_are_refused():
    net = nn.Sequential(nn.Conv3d(2, 2, 1), nn.Conv2d(2, 4, 3, groups=2))
    with pytest.raises(ValueError, match="no convolution"):
        add_lora(net, 2, 4.0, ["nothing.here"])
    with pytest.raises(ValueError, match="grouped"):
        add_lora(net, 2, 4.0, ["1"])
    add_lora(net, 2, 4.0, ["0"])
    with pytest.raises(ValueError, match="already"):
        add_lora(net, 2, 4.0, ["0"])
    state = net.state_dict()
    del state["0.parametrizations.weight.0.lora_B"]
    with pytest.raises(ValueError, match="lora_B missing"):
        merge_lora_state(state)
