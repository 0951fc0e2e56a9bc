"""A prediction service running in uvicorn on a free loopback port, for tests that talk to it over HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from include.delivery.serving import create_app

MODEL = "credit_default"
ADMIN_TOKEN = "test-admin-token"


class Service:
    """A prediction service running in uvicorn on a free loopback port, and an HTTP client for it."""

    def __init__(self, poll_seconds: float) -> None:
        self.app = create_app(poll_seconds=poll_seconds, admin_token=ADMIN_TOKEN, log_flush_seconds=0.1)
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self) -> None:
        self.thread.start()
        wait_until(lambda: self.server.started, "the server to start")

    def stop(self) -> None:
        """A clean shutdown, as uvicorn does on SIGTERM."""
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()

    def predict(self, records: Any, **kwargs: Any) -> httpx.Response:
        return self.http.post(f"/models/{MODEL}/predict", json={"records": records}, **kwargs)

    def model_info(self) -> dict[str, Any]:
        return self.http.get(f"/models/{MODEL}").json()

    def wait_for(self, condition: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Poll `/models/credit_default` until `condition` holds on its answer."""
        wait_until(lambda: condition(self.model_info()), what)
        return self.model_info()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def running_service(poll_seconds: float = 0.2) -> Iterator[Service]:
    service = Service(poll_seconds)
    service.start()
    try:
        yield service
    finally:
        service.stop()


