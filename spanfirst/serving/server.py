"""``mlflow models serve`` as a child process, and a small HTTP client for it (tests, benchmark).

The server runs exactly the README's command (``--env-manager local``, bound to 127.0.0.1) with
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``: a model that needed pickle would not load.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_command(model_uri: str, port: int, host: str = "127.0.0.1", workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
            "-h", host, "-p", str(port), *(["-w", str(workers)] if workers != 1 else [])]


class ModelServer:
    """Start ``mlflow models serve`` for ``model_uri`` (``workers`` uvicorn processes), wait until
    ``/ping`` answers, stop it on exit."""

    def __init__(self, model_uri: str, log_path: str | Path, env: dict[str, str] | None = None,
                 startup_timeout: float = 300.0, workers: int = 1) -> None:
        self.model_uri, self.log_path, self.startup_timeout = model_uri, Path(log_path), startup_timeout
        self.workers = workers
        self.env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false", **(env or {})}
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ModelServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(serve_command(self.model_uri, self.port, workers=self.workers), stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env, start_new_session=True)
        return self

    def wait_ready(self) -> "ModelServer":
        deadline = time.time() + self.startup_timeout
        while True:
            client = self.client(timeout=2)
            try:
                if client.get("/ping")[0] == 200:
                    return self
            except OSError:
                pass
            finally:
                client.close()
            if self.proc is None or self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow models serve ({self.model_uri}) did not start:\n{self.log()[-4000:]}")
            time.sleep(0.5)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def client(self, timeout: float = 120.0) -> "Client":
        return Client("127.0.0.1", self.port, timeout)

    def __enter__(self) -> "ModelServer":
        return self.start().wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Client:
    """One keep-alive HTTP connection to a scoring server."""

    def __init__(self, host: str, port: int, timeout: float = 120.0) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """(status, JSON body or text)."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
        except (http.client.HTTPException, ConnectionError):
            self.conn.close()  # reconnect once: the server may have closed an idle connection
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
        data = resp.read().decode("utf-8")
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, data

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def invoke(self, payload: dict[str, Any] | str) -> tuple[int, Any]:
        """POST /invocations with a JSON payload (a dict, or a raw string sent as is)."""
        body = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        return self.request("POST", "/invocations", body.encode("utf-8"))

    def close(self) -> None:
        self.conn.close()
