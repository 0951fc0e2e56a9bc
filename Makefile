# airflow-mlops-levels: the commands people type. `make help` lists them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run stop status test chaos lint bench replay image verify-release lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): requirements.txt constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv==0.13.8
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.txt -c constraints.txt
	@touch $(STAMP)

run: $(STAMP) ## Start the local stack (Airflow, MLflow, prediction service) and the demo loop; Ctrl-C stops it
	$(BIN)/python scripts/local_stack.py up

stop: ## Stop every process the local stack started
	@if [ -x $(BIN)/python ]; then $(BIN)/python scripts/local_stack.py down; fi

status: $(STAMP) ## Show which parts of the local stack are running
	$(BIN)/python scripts/local_stack.py status

test: $(STAMP) ## Run the whole test suite (slow end-to-end tests included)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

chaos: $(STAMP) ## Inject faults into real services (both Airflow topologies) and print what each cost
	MLOPS_CHAOS_STACKS=celery,local $(BIN)/python -m pytest -m chaos tests/chaos $(PYTEST_ARGS)

lint: $(STAMP) ## Lint with ruff (including Airflow's AIR rules) and the workflows with zizmor
	$(BIN)/ruff check .
	$(BIN)/zizmor --offline --min-severity low .github/workflows/

bench: $(STAMP) ## Run the benchmarks in bench/ (ratios against a baseline in the same process)
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

MODEL ?= credit_default
replay: $(STAMP) ## Replay a model's days under each retraining policy: MODEL=… [START=… END=… POLICIES=a,b]
	$(BIN)/python -m include.replay $(MODEL) $(if $(START),--start $(START)) $(if $(END),--end $(END)) \
		$(if $(POLICIES),--policies $(POLICIES))

IMAGE ?= airflow-mlops-levels:0.1.0
image: ## Build the production image (Dockerfile: official Airflow image + requirements.txt)
	docker build --build-arg GIT_COMMIT=$$(git rev-parse HEAD) -t $(IMAGE) .

AIRFLOW_URL ?= http://127.0.0.1:8080
SERVING_URL ?= http://127.0.0.1:8000
MLFLOW_URL ?=
verify-release: $(STAMP) ## Check a running deployment, changing nothing: AIRFLOW_URL=… SERVING_URL=… [MLFLOW_URL=…] [WITH_TRAINING=1]
	$(BIN)/python scripts/verify_release.py --airflow-url $(AIRFLOW_URL) --serving-url $(SERVING_URL) \
		$(if $(MLFLOW_URL),--mlflow-url $(MLFLOW_URL)) $(if $(WITH_TRAINING),--with-training)

lock: ## Re-resolve constraints.txt from requirements.txt (needs the network)
	$(BIN)/uv pip compile requirements.txt --python-version 3.11 --no-header -o constraints.txt

clean: stop ## Remove all local state (databases, artifacts, data, reports)
	rm -rf state
