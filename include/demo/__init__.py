"""The demo's synthetic data world: demo data, not production code."""
