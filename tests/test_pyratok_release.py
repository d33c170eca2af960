"""`pyratok-release` reads the public release's checkpoint layout: a synthetic checkpoint of that layout (tiny VAE,
4 residual 16-bit stages, per-stage text attention, text MLP) written here, loaded, and checked against an
independent computation with diffusers' AutoencoderKLWan."""
import json

import pytest
import torch

from harness.errors import MissingDataError

RELEASE_CONFIG = {
    "_class_name": "AutoencoderKLPyraTok", "base_dim": 8, "z_dim": 16, "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 1, "attn_scales": [], "temperal_downsample": [False, True, True], "dropout": 0.0,
    "is_residual": False, "use_lapq_quantizer": True, "lapq_num_codes": 65536, "lapq_num_quantizers": 4,
    "lapq_codebook_dim": 16, "lapq_commitment_weight": 0.5, "lapq_entropy_weight": 0.5,
    "lapq_inv_temperature": 100.0, "lapq_text_input_dim": 32, "lapq_text_embed_dim": 8,
    "lapq_text_mlp_hidden_dim": 16, "lapq_text_condition_heads": 2, "lapq_text_condition_scale": 0.7,
}


def _msb_codebook():
    ids = torch.arange(65536)
    mask = 2 ** torch.arange(15, -1, -1)
    return ((ids[:, None] & mask[None]) > 0).float() * 2 - 1


def write_release(folder, fmt="safetensors", extra=None, codebook=None):
    """A checkpoint with the release's key names: the VAE's own keys plus lapq_text_mlp.* and lapq_quantizer.*."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=8, z_dim=16, num_res_blocks=1)
    state = dict(vae.state_dict())
    g = torch.Generator().manual_seed(1)
    rnd = lambda *s: torch.randn(*s, generator=g) * 0.2  # noqa: E731
    state.update({"lapq_text_mlp.0.weight": rnd(16, 32), "lapq_text_mlp.0.bias": rnd(16),
                  "lapq_text_mlp.2.weight": rnd(8, 16), "lapq_text_mlp.2.bias": rnd(8)})
    for i in range(4):
        p = f"lapq_quantizer.layers.{i}."
        state.update({p + "cross_attn.in_proj_weight": rnd(48, 16), p + "cross_attn.in_proj_bias": rnd(48),
                      p + "cross_attn.out_proj.weight": rnd(16, 16), p + "cross_attn.out_proj.bias": rnd(16),
                      p + "query_norm.weight": 1 + rnd(16), p + "query_norm.bias": rnd(16),
                      p + "text_context_norm.weight": 1 + rnd(16), p + "text_context_norm.bias": rnd(16),
                      p + "text_proj.weight": rnd(16, 8), p + "text_proj.bias": rnd(16),
                      p + "bitmask": 2 ** torch.arange(15, -1, -1),
                      p + "codebook": (_msb_codebook() if codebook is None else codebook).clone()})
    state.update(extra or {})
    vae_dir = folder / "vae"
    vae_dir.mkdir(parents=True)
    (vae_dir / "config.json").write_text(json.dumps(RELEASE_CONFIG))
    if fmt == "bin":
        torch.save(state, vae_dir / "diffusion_pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(vae_dir / "diffusion_pytorch_model.safetensors"))
    return vae


def _independent_codes(vae, x, stages=4):
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
    residual, codes = z, []
    for i in range(stages):
        q = torch.where(residual >= 0, 1.0, -1.0)
        codes.append(q)
        residual = residual - q * 2.0 ** -i
    return codes


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_release_layout_loads_and_matches_an_independent_computation(tmp_path, fmt):
    from models.pyratok.release import ReleaseAdapter

    vae = write_release(tmp_path, fmt).eval()
    adapter = ReleaseAdapter(path=str(tmp_path))
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    tokens = adapter.encode(x)
    assert [lv.name for lv in tokens.levels] == ["stage0", "stage1", "stage2", "stage3"]
    assert tokens.bits.item() == 4 * 16 * 3 * 4 * 4  # 4 stages x 16 bits per latent cell
    expected = _independent_codes(vae, x)
    for lv, q in zip(tokens.levels, expected):
        assert torch.equal(lv.bits, (q > 0).to(torch.uint8).movedim(1, -1))
    # MSB-first indices, as the release's bitmask
    idx = tokens.levels[0].as_indices()
    manual = ((expected[0] > 0).long() * (2 ** torch.arange(15, -1, -1)).view(1, 16, 1, 1, 1)).sum(1)
    assert torch.equal(idx, manual)
    value = sum(q * 2.0 ** -i for i, q in enumerate(expected))
    with torch.no_grad():
        assert torch.allclose(adapter.decode(tokens), vae.decode(value).sample, atol=1e-5)
    assert set(adapter.weight_hashes()) == {f"vae/diffusion_pytorch_model.{fmt}"}
    assert adapter.features(x).shape == (1, 3, 4, 4, 16)


def test_stage_subset_and_text_switch(tmp_path):
    from models.pyratok.release import ReleaseAdapter
    from models.tokenizer.quantizer import TextContext

    write_release(tmp_path)
    two = ReleaseAdapter(path=str(tmp_path), stages=2)
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    assert two.encode(x).bits.item() == 2 * 16 * 2 * 2 * 2
    on = ReleaseAdapter(path=str(tmp_path), text_condition="on")
    assert on.model.quantizer.text_scale == pytest.approx(0.7)
    released = ReleaseAdapter(path=str(tmp_path))
    assert released.model.quantizer.text_scale == 0.0  # the public code forces the scale to 0
    z = [torch.randn(1, 16, 2, 2, 2)]
    tok = torch.randn(1, 3, 32)
    ctx = on.model.text_mlp(tok)
    text = TextContext(ctx, torch.ones(1, 3, dtype=torch.bool), ctx.mean(1), torch.ones(1, dtype=torch.bool))
    with torch.no_grad():
        a = on.model.quantizer(z, text).levels[0].stage_codes
        b = released.model.quantizer(z, text).levels[0].stage_codes
        c = on.model.quantizer(z, None).levels[0].stage_codes
    assert any(not torch.equal(p, q) for p, q in zip(a, b))
    assert all(torch.equal(p, q) for p, q in zip(b, c))


def test_bad_checkpoints_are_refused(tmp_path):
    from models.pyratok.release import ReleaseAdapter

    write_release(tmp_path / "extra", extra={"lapq_quantizer.project_in.weight": torch.zeros(16, 16, 1, 1, 1)})
    with pytest.raises(KeyError, match="project_in"):
        ReleaseAdapter(path=str(tmp_path / "extra"))
    bad = _msb_codebook().flip(-1)
    write_release(tmp_path / "lsb", codebook=bad)
    with pytest.raises(ValueError, match="MSB-first"):
        ReleaseAdapter(path=str(tmp_path / "lsb"))


def test_missing_folder_names_where_to_get_it(tmp_path):
    from models.pyratok.release import ReleaseAdapter

    with pytest.raises(MissingDataError) as err:
        ReleaseAdapter(path=str(tmp_path / "nowhere"))
    msg = str(err.value)
    assert "huggingface.co/onkarsus13/PyraTok" in msg and str(tmp_path / "nowhere") in msg
