"""CLIPSIM: how well a video matches its text, as the mean over frames of the CLIP image-text cosine similarity.

Convention (named `cosine` in results): the raw cosine in [-1, 1], not multiplied by 100 and not clipped at 0 —
the scale of the numbers papers report for MSR-VTT (e.g. 0.30; VideoGPT / Make-A-Video style). CLIPScore (Hessel et
al.) and torchmetrics' `CLIPScore` instead report 100 * max(cos, 0); multiply by 100 to compare with those when no
cosine is negative.

CLIP comes from a local transformers folder (`CLIPModel` + `CLIPProcessor`: its own resize, centre crop and
normalisation, and its tokenizer with truncation at the model's context length); nothing is downloaded. The
default folder is `$PYRATOK_BENCH_WEIGHTS/clip-vit-base-patch32` (openai/clip-vit-base-patch32, the ViT-B/32 the
field usually means); the folder and its sha256 go into results.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from harness.weights import find_weight, missing_message, weight_sha256

DEFAULT_CLIP = "clip-vit-base-patch32"


def clip_folder(path: str | Path | None = None) -> Path | None:
    """The CLIP folder to use: `path` when given (None if it does not hold a config.json), else the default one."""
    if path is not None:
        p = Path(path).expanduser()
        return p if (p / "config.json").is_file() else None
    found = find_weight(DEFAULT_CLIP)
    return found if found is not None and (found / "config.json").is_file() else None


def clip_unavailable(path: str | Path | None = None) -> str | None:
    if clip_folder(path) is not None:
        return None
    if path is not None:
        return f"CLIP folder {path} not found or without config.json (a transformers CLIPModel folder is needed)"
    return missing_message(DEFAULT_CLIP)


def _embedding(out) -> torch.Tensor:
    """transformers < 5 returns the projected embedding; 5.x wraps it as `pooler_output`."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class CLIPSim:
    """A loaded CLIP: unit-norm text and frame embeddings, and per-frame cosines."""

    def __init__(self, path: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 32):
        from transformers import CLIPModel, CLIPProcessor

        folder = clip_folder(path)
        if folder is None:
            from harness.errors import MissingDataError

            raise MissingDataError(clip_unavailable(path))
        self.folder = folder
        self.sha256 = weight_sha256(folder)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = CLIPModel.from_pretrained(str(folder), local_files_only=True).eval().to(self.device)
        self.processor = CLIPProcessor.from_pretrained(str(folder), local_files_only=True)
        self.context_length = int(self.model.config.text_config.max_position_embeddings)

    @torch.no_grad()
    def text_embeddings(self, texts: list[str]) -> torch.Tensor:
        tok = self.processor.tokenizer(list(texts), padding=True, truncation=True, max_length=self.context_length,
                                       return_tensors="pt")
        emb = _embedding(self.model.get_text_features(**{k: v.to(self.device) for k, v in tok.items()}))
        return torch.nn.functional.normalize(emb.float(), dim=-1)

    @torch.no_grad()
    def frame_embeddings(self, frames) -> torch.Tensor:
        """uint8 (T, H, W, 3) frames -> (T, D) unit-norm image embeddings."""
        frames = np.asarray(frames)
        out = []
        for s in range(0, len(frames), self.batch_size):
            px = self.processor.image_processor(images=list(frames[s:s + self.batch_size]), return_tensors="pt")
            emb = _embedding(self.model.get_image_features(pixel_values=px["pixel_values"].to(self.device)))
            out.append(torch.nn.functional.normalize(emb.float(), dim=-1))
        return torch.cat(out)

    def frame_cosines(self, frames, text: str) -> np.ndarray:
        """Per-frame cosine (T,) between each frame and `text`."""
        return (self.frame_embeddings(frames) @ self.text_embeddings([text])[0]).double().cpu().numpy()

    def clipsim(self, frames, text: str) -> float:
        """CLIPSIM of one video: the mean over its frames of the cosine with its text."""
        return float(self.frame_cosines(frames, text).mean())
