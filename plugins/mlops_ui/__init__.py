"""The MLOps pages served inside the Airflow UI (see `plugins/mlops_ui_plugin.py`).

- `app`: the FastAPI app and its routes, every one behind Airflow's login;
- `airflow_access`: what the pages ask Airflow (the user's access, paused DAGs, a task's return value);
- `pages`: the HTML, rendered from the plain dicts of `include.monitoring.model_status`;
- `files`: which report files may be served, and from where.
"""
