"""Before training: sources, encoding, splits, the prep stage and the test-split guard (no torch)."""
