"""What every stage uses: the model config, where state lives, the stores, the MLflow registry,
the champion's history."""
