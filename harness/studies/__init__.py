"""Studies over many runs: declarative sweeps (ablations) and resolution scaling."""
