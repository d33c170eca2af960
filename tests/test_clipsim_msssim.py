"""CLIPSIM with a tiny random CLIP saved as a transformers folder; MS-SSIM per frame through torchmetrics."""
import json

import numpy as np
import pytest
import torch

from harness.metrics.clipsim import CLIPSim, clip_unavailable
from harness.metrics.pixel import ms_ssim_frames
from tests.conftest import moving_frames


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = tmp_path_factory.mktemp("clip")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8), projection_dim=8)
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def test_clipsim_is_the_mean_over_frames_of_the_image_text_cosine(tiny_clip):
    frames = moving_frames(5, 40, 48, seed=2)
    clip = CLIPSim(tiny_clip, batch_size=2)
    text = "red cat"  # 9 tokens with bos and eos: no truncation
    got = clip.frame_cosines(frames, text)
    # independently: the model's own logits_per_text are logit_scale * cosine
    inputs = clip.processor(text=[text], images=list(frames), return_tensors="pt", padding=True)
    with torch.no_grad():
        out = clip.model(**inputs)
    want = (out.logits_per_text[0] / clip.model.logit_scale.exp()).detach().double().numpy()
    assert got.shape == (5,) and np.all(np.abs(got) <= 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert clip.clipsim(frames, text) == pytest.approx(float(want.mean()), abs=1e-6)
    assert len(clip.sha256) == 64
    # texts longer than the model's context are truncated (CLIP's 77 tokens; 16 here), not an error
    assert np.isfinite(clip.clipsim(frames, "a square moves over a gradient, slowly and steadily"))


def test_clipsim_without_a_clip_folder_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PYRATOK_BENCH_WEIGHTS", str(tmp_path))
    assert "clip-vit-base-patch32 not found" in clip_unavailable()
    assert "without config.json" in clip_unavailable(tmp_path / "nowhere")


def test_ms_ssim_per_frame_matches_torchmetrics_and_its_invariants(rng):
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

    ref = moving_frames(2, 176, 176, seed=5)
    noisy = np.clip(ref.astype(int) + rng.integers(-25, 26, ref.shape), 0, 255).astype(np.uint8)
    got = ms_ssim_frames(ref, noisy)
    assert got.shape == (2,)
    for t in range(2):  # frame by frame, the order of the frames is kept
        one = ms_ssim(torch.as_tensor(noisy[t:t + 1]).permute(0, 3, 1, 2).double(),
                      torch.as_tensor(ref[t:t + 1]).permute(0, 3, 1, 2).double(), data_range=255.0)
        assert got[t].item() == pytest.approx(one.item(), abs=1e-10)
    assert ms_ssim_frames(ref[:1], ref[:1]).item() == pytest.approx(1.0, abs=1e-12)
    worse = np.clip(ref.astype(int) + rng.integers(-60, 61, ref.shape), 0, 255).astype(np.uint8)
    assert (ms_ssim_frames(ref, worse) < got).all() and (got < 1).all()
