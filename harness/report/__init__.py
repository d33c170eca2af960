"""Reports built only from result files."""
