"""Learned single-quantizer baselines (LFQ, BSQ, VQ, RVQ, FSQ) on the shared causal VAE backbone and training loop
of models/tokenizer, so that a comparison with PyraTok changes only the quantizer (docs/baselines-learned.md)."""
