"""Baselines: references without learning (identity, downsample, codecs) and the tokenizers PyraTok is compared to."""
