"""Shared material for mini splits: procedural scenes and clips of real videos."""
