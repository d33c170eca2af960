"""What every tokenizer built on the causal video VAE shares: the backbone wrapper, the quantizer interface, binary
quantization primitives, the generic model, reconstruction losses, training data sources, tiling and the trainer.

PyraTok (models/pyratok) and the single-quantizer baselines use the same pieces, so that in a comparison only the
quantizer differs.
"""
