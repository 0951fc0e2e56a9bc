"""Monitoring: drift, realized performance on delayed labels, the retrain policy and alerts."""
