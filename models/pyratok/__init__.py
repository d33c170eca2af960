"""PyraTok (arXiv 2601.16210): LaPQ, text, losses, prior, model, adapter, release loader and trainer."""
