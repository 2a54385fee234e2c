"""Fixtures of the real sweep tests: a real ``mlflow server`` on 127.0.0.1 and ``sweep_tools``
(run ``pipelines/sweep.py`` in its own process, so every sweep gets a fresh Ray that ends with it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from spanfirst.serving.server import free_port  # other conftests load it from here

REPO = Path(__file__).resolve().parents[2]
SWEEP = REPO / "pipelines" / "sweep.py"
CONFIGS = REPO / "spanfirst" / "configs"


def _sweep_cmd(space: Path, *args: str) -> list[str]:
    return [sys.executable, "-u", str(SWEEP), str(space), *args]


def _run_sweep(space: Path, cwd: Path, *args: str, timeout: float = 420) -> str:
    """Run ``pipelines/sweep.py`` to the end in its own process (its own Ray); returns its output."""
    out = subprocess.run(_sweep_cmd(space, *args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "RAY_DEDUP_LOGS": "1"})
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-6000:]
    return out.stdout


def _write_space(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture
def sweep_tools() -> SimpleNamespace:
    return SimpleNamespace(configs=CONFIGS, cmd=_sweep_cmd, run=_run_sweep, write_space=_write_space, script=SWEEP)


@pytest.fixture
def mlflow_server(tmp_path):
    """A real tracking server on 127.0.0.1 (SQLite backend, artifacts served by the server)."""
    port = free_port()
    root = tmp_path / "mlflow-server"
    root.mkdir()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield uri
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


CHROMIUM = os.environ.get("SPANFIRST_CHROMIUM", "/usr/bin/chromium")
# What the workplace's headless probe runs Chromium with: no sandbox as root, and none of the
# background connections a closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def chromium():
    """A real headless Chromium (Debian's package, driven by Playwright without its own browser
    download); a new page per call of the yielded function. Skipped where missing, except under CI
    (.ci/run installs it)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not Path(CHROMIUM).is_file():
        missing = "playwright (pip install -e '.[dev]')" if sync_playwright is None else CHROMIUM
        if os.environ.get("CI"):
            pytest.fail(f"CI: {missing} missing; .ci/run installs Debian's chromium and the dev extra")
        pytest.skip(f"no headless browser: {missing} missing (Debian: apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield lambda: browser.new_page(viewport={"width": 2000, "height": 1000})
        finally:
            browser.close()
