# The one image of the production topology (docker-compose.yaml): every Airflow component, the
# MLflow tracking server and the prediction service run from it. Build: `docker build -t airflow-mlops-levels .`
# Keep the tag in step with apache-airflow in constraints.txt (tests/test_compose.py checks it).
FROM apache/airflow:3.3.2-python3.11

# The project's full lock (constraints.txt) decides every version, as on a developer's machine.
# requirements.txt pins apache-airflow itself, so pip cannot swap the image's Airflow for another.
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt -c /opt/airflow/constraints.txt

# Mount points of the named volumes, owned by the airflow user: an empty named volume takes the
# owner of the folder it is mounted on, so the services (uid 50000, gid 0) can write to it.
USER root
RUN mkdir -p /mlflow/artifacts \
    && chown -R airflow:0 /mlflow \
    && chmod -R g+rwX /mlflow
USER airflow
RUN mkdir -p /opt/airflow/state /opt/airflow/auth

COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/

# The DAGs and the prediction service import the `include` package from /opt/airflow. The commit is
# recorded on every MLflow run (include/training/continuous_training.py current_git_commit); CI passes it.
ARG GIT_COMMIT=unknown
ENV PYTHONPATH=/opt/airflow \
    MLOPS_GIT_COMMIT=${GIT_COMMIT} \
    GX_ANALYTICS_ENABLED=False
WORKDIR /opt/airflow
