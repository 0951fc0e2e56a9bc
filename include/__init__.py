"""The airflow-mlops-levels library: plain Python, no Airflow imports, testable without a scheduler."""
