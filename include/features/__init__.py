"""The feature store: the model's features kept in Feast, for training sets and online lookups."""
