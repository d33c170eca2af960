"""Metrics, each matching its reference implementation; see the README for the variants."""
