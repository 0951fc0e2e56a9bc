"""Data: sources, the validation gate (Great Expectations) and ingestion into the curated store."""
