"""Delivery: infrastructure validation, alias moves, the prediction service, its log and batch prediction."""
