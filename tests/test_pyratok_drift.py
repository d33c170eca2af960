"""The drift reference as a local image model (DINOv2/DINOv3 through transformers, generated here with random
weights): patch tokens on the encoder's mid grid, causal frame grouping, prefix tokens skipped, the projection and
the loss's gradients, and bundles that build without the reference's folder."""
import pytest
import torch
import torch.nn.functional as F

from harness.errors import MissingDataError
from models.pyratok.drift import IMAGENET_MEAN, IMAGENET_STD, ImageModelReference

WIDTH, PATCH = 24, 4


def save_image_model(folder, kind: str = "dinov2", registers: int = 0):
    from transformers import Dinov2Config, Dinov2Model, DINOv3ViTConfig, DINOv3ViTModel

    torch.manual_seed(0)
    common = dict(hidden_size=WIDTH, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
                  patch_size=PATCH, image_size=16)
    model = (Dinov2Model(Dinov2Config(**common)) if kind == "dinov2"
             else DINOv3ViTModel(DINOv3ViTConfig(**common, num_register_tokens=registers)))
    model.save_pretrained(folder)
    return model.eval()


@pytest.mark.parametrize("kind,registers", [("dinov2", 0), ("dinov3", 2)])
def test_patch_tokens_on_the_mid_grid_grouped_as_the_causal_encoder(tmp_path, kind, registers):
    model = save_image_model(tmp_path / kind, kind, registers)
    ref = ImageModelReference(tmp_path / kind, frames_per_batch=4)
    video = torch.rand(1, 3, 9, 32, 48) * 2 - 1
    out = ref.features(video, (3, 4, 6))
    assert out.shape == (1, WIDTH, 3, 4, 6)

    def frame_tokens(i):  # the model's own patch tokens for one frame, computed independently
        x = F.interpolate((video[:, :, i] + 1) / 2, size=(4 * PATCH, 6 * PATCH), mode="bilinear", antialias=True)
        x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            h = model(pixel_values=x).last_hidden_state[:, 1 + registers:]
        return h.reshape(1, 4, 6, WIDTH).permute(0, 3, 1, 2)

    assert torch.allclose(out[:, :, 0], frame_tokens(0), atol=1e-5)  # frame 0 alone
    assert torch.allclose(out[:, :, 1], torch.stack([frame_tokens(i) for i in range(1, 5)]).mean(0), atol=1e-5)
    assert not any(p.requires_grad for p in ref.parameters())


def small_config(**over):
    from models.pyratok.config import get_config

    cfg, _ = get_config("tiny", {"base_dim": 8, "levels": 2, "align_negatives": 2, "ar_window": 16, **over})
    return cfg


def test_training_drift_projects_the_mid_features_onto_the_reference(tmp_path):
    from models.pyratok.model import PyraTokModel

    save_image_model(tmp_path / "dino")
    model = PyraTokModel(small_config(drift_reference=str(tmp_path / "dino"), w_drift=1.0, mask_prob=0.0))
    assert model.cfg.drift_width == WIDTH and model.drift_proj.out_channels == WIDTH
    assert model.drift_source() == "image-model" and not model._drift_ref  # loaded only for training
    model.load_drift_reference()
    video = torch.rand(2, 3, 5, 32, 32) * 2 - 1
    terms = model.training_losses(video, ["a red square slides left", None], ["a blue circle"],
                                  torch.Generator().manual_seed(0))
    assert torch.isfinite(terms["drift"]) and terms["drift"] > 0
    terms["drift"].backward()
    assert model.drift_proj.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.vae.encoder.parameters())
    assert all(p.grad is None for p in model._drift_ref[0].parameters())


def test_a_bundle_builds_without_the_reference_folder_and_a_missing_folder_is_named(tmp_path):
    from models.pyratok.model import PyraTokModel

    model = PyraTokModel(small_config(drift_reference=str(tmp_path / "gone"), drift_width=WIDTH))
    assert model.drift_proj.out_channels == WIDTH  # the width comes from the configuration
    with pytest.raises(MissingDataError, match="gone.*config.json missing"):
        PyraTokModel(small_config(drift_reference=str(tmp_path / "gone")))
