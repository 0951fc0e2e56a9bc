"""A real MLflow tracking server that a test can take down at a chosen request, and bring back.

`MlflowServer` runs `mlflow server` (SQLite backend, artifacts served by the server, as in the
production topology) as a process of its own. `OutageProxy` sits between the clients and that
server and passes every request through, until the request a test armed it for: then it kills the
server (SIGKILL, the whole process group), before or after forwarding that request, drops the
client's connection without an answer, and restarts the server on the same database a few seconds
later, as a container orchestrator would. While the server is down, every connection is dropped.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from scripts.local_stack import VENV_BIN
from tests.test_local_stack import free_ports

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


class MlflowServer:
    """`mlflow server` on 127.0.0.1:`port` with its database and artifacts in `folder`."""

    def __init__(self, folder: Path, port: int):
        self.folder, self.port = folder, port
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        """Start the server and wait until /health answers."""
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
                   "--serve-artifacts", "--artifacts-destination", str(self.folder / "artifacts"),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with (self.folder / "server.log").open("a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log_tail = (self.folder / "server.log").read_text()[-2000:]
                raise RuntimeError(f"mlflow server did not come up (exit {self.process.poll()}):\n{log_tail}")
            time.sleep(0.3)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL the server and every process it started; no goodbye, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill()


@dataclass
class Outage:
    """What the proxy is armed for: the `nth` `method` request whose path ends with `path`."""

    method: str
    path: str
    nth: int
    forward_first: bool  # True: the server does the request, then dies before its answer reaches the client
    down_for: float
    seen: int = 0
    happened_at: float | None = None
    restored_at: float | None = None


class OutageProxy:
    """An HTTP proxy in front of `server` that takes it down at the request `arm` names."""

    def __init__(self, server: MlflowServer):
        self.server = server
        self.outage: Outage | None = None
        self.down = threading.Event()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if not proxy.before_forwarding(self.command, self.path):
                    self.close_connection = True
                    return
                try:
                    status, headers, answer = proxy.forward(self.command, self.path, dict(self.headers), body)
                except OSError:
                    self.close_connection = True
                    return
                if not proxy.after_forwarding(self.command, self.path):
                    self.close_connection = True
                    return
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = handle_one

        [port] = free_ports(1)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def arm(self, path: str, *, method: str = "POST", nth: int = 1, forward_first: bool, down_for: float) -> Outage:
        """Take the server down at the `nth` `method` request to a path ending with `path`, for `down_for` s."""
        self.outage = Outage(method, path, nth, forward_first, down_for)
        return self.outage

    def targets(self, method: str, path: str) -> bool:
        """Is this request of the kind the armed outage waits for?"""
        outage = self.outage
        return (outage is not None and outage.happened_at is None and method == outage.method
                and path.split("?")[0].endswith(outage.path))

    def forward(self, method: str, path: str, headers: dict, body: bytes | None):
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        try:
            headers = {key: value for key, value in headers.items() if key.lower() not in HOP_BY_HOP}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def before_forwarding(self, method: str, path: str) -> bool:
        """False: drop the connection (the server is down, or goes down now without doing the request)."""
        with self.lock:
            if self.down.is_set():
                return False
            if not self.targets(method, path):
                return True
            outage = self.outage
            outage.seen += 1
            if outage.seen < outage.nth or outage.forward_first:
                return True
            self.take_down(outage)
            return False

    def after_forwarding(self, method: str, path: str) -> bool:
        """False: the server did the request and died before answering (the answer is lost)."""
        with self.lock:
            outage = self.outage
            if not self.targets(method, path) or not outage.forward_first or outage.seen < outage.nth:
                return True
            self.take_down(outage)
            return False

    def take_down(self, outage: Outage) -> None:
        self.down.set()
        self.server.kill()
        outage.happened_at = time.monotonic()

        def restore() -> None:
            time.sleep(outage.down_for)
            self.server.start()
            outage.restored_at = time.monotonic()
            self.down.clear()

        threading.Thread(target=restore, daemon=True).start()

    def wait_until_restored(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while self.down.is_set() or (self.outage and self.outage.happened_at and not self.outage.restored_at):
            if time.monotonic() > deadline:
                raise TimeoutError("the MLflow server did not come back")
            time.sleep(0.2)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
