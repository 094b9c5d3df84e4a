"""Analysis of a results tree: pure functions load → tables → figures (DataFrames, Figures)."""
