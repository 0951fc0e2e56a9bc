"""The GitHub workflows (Level 2: CI/CD of the pipeline) parse and run what a developer runs.

CI lints and tests with the same make targets as a developer, and builds the image; CD pushes the
image, deploys it to staging, verifies the release, and only then, behind a protected environment,
to production.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from include.core import settings

ROOT = settings.PROJECT_ROOT
WORKFLOWS = ROOT / ".github" / "workflows"


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps(job: dict) -> list[dict]:
    return job.get("steps") or []


def run_lines(job: dict) -> list[str]:
    return [line.strip() for step in steps(job) for line in str(step.get("run", "")).splitlines() if line.strip()]


def make_targets_called(job: dict) -> list[str]:
    return [match[1] for line in run_lines(job) for match in re.finditer(r"\bmake\s+([a-z][a-z0-9-]*)", line)]


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.M))


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml"])
def test_the_workflow_parses_and_every_job_runs_steps(name):
    workflow = load(name)

    assert workflow["on"], f"{name} has no trigger"
    assert workflow["jobs"]
    for job_id, job in workflow["jobs"].items():
        assert job.get("runs-on") and steps(job), f"{name}: job {job_id} has no runner or no steps"
        for step in steps(job):
            assert ("run" in step) != ("uses" in step), f"{name}: job {job_id} step {step} needs run or uses"


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml"])
def test_every_make_target_a_workflow_calls_exists_in_the_makefile(name):
    called = {target for job in load(name)["jobs"].values() for target in make_targets_called(job)}

    assert called, f"{name} calls no make target: CI/CD must run what a developer runs"
    assert sorted(called - makefile_targets()) == []


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml"])
def test_actions_are_pinned_to_a_commit_and_python_is_the_projects(name):
    requires = re.search(r'requires-python = ">=(\d+\.\d+)', (ROOT / "pyproject.toml").read_text())[1]
    for job in load(name)["jobs"].values():
        for step in steps(job):
            if "uses" in step:
                assert re.search(r"@[0-9a-f]{40}$", step["uses"]), f"{step['uses']}: a tag can be moved, a commit not"
            if step.get("uses", "").startswith("actions/setup-python"):
                assert str(step["with"]["python-version"]) == requires


def test_ci_lints_tests_and_builds_the_image_with_postgres_and_redis_beside_it():
    jobs = load("ci.yml")["jobs"]
    called = [target for job in jobs.values() for target in make_targets_called(job)]

    assert {"lint", "test"} <= set(called)
    assert any("image" in targets or any(line.startswith("docker build") for line in run_lines(job))
               for job, targets in ((job, make_targets_called(job)) for job in jobs.values()))
    [tested] = [job for job in jobs.values() if "test" in make_targets_called(job)]
    services = tested["services"]
    assert services["postgres"]["env"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert "5432:5432" in services["postgres"]["ports"]
    assert "6379:6379" in services["redis"]["ports"]


def test_cd_pushes_to_ghcr_then_verifies_staging_then_production_waits_for_approval():
    jobs = load("cd.yml")["jobs"]
    by_environment = {job["environment"]["name"]: (job_id, job) for job_id, job in jobs.items() if "environment" in job}

    assert set(by_environment) == {"staging", "production"}
    staging_id, staging = by_environment["staging"]
    _, production = by_environment["production"]
    assert staging_id in production["needs"], "production must wait for a verified staging"
    builder = [job_id for job_id, job in jobs.items() if any("docker push" in line for line in run_lines(job))]
    assert builder and builder[0] in staging["needs"]
    assert "ghcr.io/" in (WORKFLOWS / "cd.yml").read_text()
    for job in (staging, production):
        verify = [line for line in run_lines(job) if line.startswith("make verify-release")]
        assert verify and "AIRFLOW_URL=" in verify[0] and "SERVING_URL=" in verify[0]
        deploy = run_lines(job).index("docker compose up -d --no-build --wait")
        assert deploy < run_lines(job).index(verify[0]), "verify after deploying"
        with_training = "WITH_TRAINING=1" in verify[0]
        assert with_training == (job is staging), "the training check, which may deliver a model, runs on staging only"


def test_cd_gives_compose_every_secret_of_env_example_from_github_secrets():
    example = [line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for job_id, job in load("cd.yml")["jobs"].items():
        if "environment" in job:
            env = job["env"]
            for key in example:
                assert env.get(key) == f"${{{{ secrets.{key} }}}}", f"{job_id}: {key} must come from the secrets"


def test_zizmor_finds_nothing_above_informational_in_the_workflows():
    """GitHub Actions' security linter, offline, as `make lint` runs it: unpinned actions, checkouts that
    keep credentials, expressions spliced into shell scripts all fail here."""
    zizmor = Path(sys.executable).with_name("zizmor")
    result = subprocess.run([str(zizmor), "--offline", "--min-severity", "low", str(WORKFLOWS)],
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
