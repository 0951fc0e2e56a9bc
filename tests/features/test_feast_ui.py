"""`feast ui` serves the generated repository's registry browser from this machine, without the network."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from include.features import feature_store
from tests.test_local_stack import free_ports


@pytest.mark.slow
def test_feast_ui_serves_the_models_feature_store_offline(state_dir, demo_config):
    feature_store.open_store(demo_config)
    (port,) = free_ports(1)
    feast = Path(sys.executable).with_name("feast")
    ui = subprocess.Popen([str(feast), "ui", "-h", "127.0.0.1", "-p", str(port)],
                          cwd=feature_store.repo_dir(demo_config.name), env=os.environ.copy(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                projects = httpx.get(f"http://127.0.0.1:{port}/projects-list.json", timeout=5)
                break
            except httpx.TransportError:
                if ui.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"feast ui did not start: {ui.communicate(timeout=10)[0][-2000:]}")
                time.sleep(1)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
    finally:
        ui.terminate()
        ui.wait(timeout=30)

    assert projects.status_code == 200
    assert [project["id"] for project in projects.json()["projects"]] == [demo_config.name]
    assert page.status_code == 200 and "<html" in page.text.lower()
