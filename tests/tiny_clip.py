"""A tiny CLIP that has learned something: trained for a few seconds, contrastively, on frames of the procedural
scenes and their captions, then saved as a transformers CLIP folder (the format CLIPSIM reads).

A random CLIP gives image-text cosines whose order means nothing, so "the oracle generator beats noise" could not be
tested with one. This model reads the scene words (its tokenizer holds each caption word as one token, from a small
BPE trained here on the captions) and sees 32x32 frames; after training, a frame of the described scene matches its
caption better than noise does. Deterministic on a given machine (fixed seeds, single-threaded data).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch

SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def train_bpe(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges (CLIP's format: the last symbol of a word carries "</w>") after merging until every
    word of `words` is a single token. Ties between equally frequent pairs go to the smaller pair, so the result
    does not depend on set ordering."""
    vocab_words = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in sorted(set(words))}
    symbols = set()
    for c in "abcdefghijklmnopqrstuvwxyz0123456789'-,.":
        symbols |= {c, c + "</w>"}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter = Counter()
        for seq in vocab_words.values():
            pairs.update(zip(seq, seq[1:]))
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], tuple(-ord(ch) for ch in "".join(kv[0]))))[0]
        merges.append(best)
        joined = best[0] + best[1]
        symbols.add(joined)
        for w, seq in vocab_words.items():
            out, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and (seq[i], seq[i + 1]) == best:
                    out.append(joined)
                    i += 2
                else:
                    out.append(seq[i])
                    i += 1
            vocab_words[w] = tuple(out)
    vocab = {tok: i for i, tok in enumerate(list(SPECIALS) + sorted(symbols))}
    return vocab, merges


def _training_pairs(n_scenes: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """One frame per (scene, caption paraphrase): rendered scenes like the MSR-VTT mini split's."""
    from tasks.mini.clips import caption_variants, motion_scene
    from tasks.mini.scenes import MOTIONS, render

    rng = np.random.default_rng(seed)
    frames, texts = [], []
    for i in range(n_scenes):
        scene = motion_scene(rng, MOTIONS[i % len(MOTIONS)], 4, size, size, 8)
        video, _ = render(scene)
        for j, caption in enumerate(caption_variants(scene, 20)):
            frames.append(video[j % len(video)])
            texts.append(caption)
    return np.stack(frames), texts


def write_tiny_clip(folder: Path, steps: int = 100, seed: int = 0) -> Path:
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    from tasks.mini.clips import _PATTERNS
    from tasks.mini.scenes import BACKGROUNDS, COLORS, MOTIONS, SHAPES

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = [w for text in (*_PATTERNS, *COLORS, *SHAPES, *MOTIONS, *BACKGROUNDS, "nothing moves", "is keeps")
             for w in text.replace("{", " ").replace("}", " ").split()]
    vocab, merges = train_bpe(words)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = CLIPProcessor(image_processor=images, tokenizer=tokenizer)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster than several on a shared machine
    try:
        model = _train(processor, len(vocab), steps, seed)
    finally:
        torch.set_num_threads(threads)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _train(processor, vocab_size: int, steps: int, seed: int):
    """CLIP's symmetric contrastive loss on (frame, caption) pairs, plus a sigmoid loss that puts matched pairs above
    zero cosine and noise frames (which no caption describes) below it."""
    from transformers import CLIPConfig, CLIPModel

    F = torch.nn.functional
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8), projection_dim=16)
    model = CLIPModel(config).train()
    frames, texts = _training_pairs(40, 32, seed)
    pixels = processor.image_processor(images=list(frames), return_tensors="pt")["pixel_values"]
    noise_frames = np.random.default_rng(seed).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    noise = processor.image_processor(images=list(noise_frames), return_tensors="pt")["pixel_values"]
    tok = processor.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    batch, n_noise = 64, 16
    target = torch.arange(batch)
    for _ in range(steps):
        idx = torch.randperm(len(texts), generator=gen)[:batch]
        noisy = torch.randperm(len(noise), generator=gen)[:n_noise]
        out = model(input_ids=tok["input_ids"][idx], attention_mask=tok["attention_mask"][idx],
                    pixel_values=torch.cat([pixels[idx], noise[noisy]]))
        img, txt = F.normalize(out.image_embeds, dim=-1), F.normalize(out.text_embeds, dim=-1)
        logits = model.logit_scale.exp() * txt @ img[:batch].T
        contrastive = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        matched = F.softplus(-8.0 * (txt * img[:batch]).sum(-1)).mean()
        unmatched = F.softplus(8.0 * (txt @ img[batch:].T)).mean()
        loss = contrastive + matched + unmatched
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
