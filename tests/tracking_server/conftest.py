"""Fixtures of the tracking-server tests: ``mlflow_server/serve.py`` as a real process, a real
throwaway PostgreSQL cluster, and the client scenario run in its own process."""

from __future__ import annotations

import base64
import glob
import importlib.util
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "mlflow_server" / "serve.py"
SCENARIO = Path(__file__).with_name("client_scenario.py")
ADMIN_PASSWORD = "admin-pass-for-tests-1"  # a throwaway server's; MLflow wants at least 12 characters
# Variables each test sets itself for the processes it starts, never inherited from the caller.
ISOLATED_ENV_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PGPASSWORD",
                     "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")

# free_port from the sweep tests' conftest (loaded, not copied; conftests are not importable here)
_spec = importlib.util.spec_from_file_location("_sweep_conftest", Path(__file__).parents[1] / "sweep" / "conftest.py")
_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_sweep)
free_port = _sweep.free_port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any MLflow URI or credentials, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_ENV_KEYS}
    return {**env, **extra}


def run_serve(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """``serve.py`` run to its end (for options it must refuse)."""
    return subprocess.run([sys.executable, str(SERVE), *args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else clean_env())


@contextmanager
def tracking_server(data_dir: Path, *args: str, env: dict[str, str] | None = None,
                    timeout: float = 300) -> Iterator[SimpleNamespace]:
    """``serve.py`` on a free port of 127.0.0.1 (one worker), until its /health answers."""
    port = free_port()
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, str(SERVE), "--data-dir", str(data_dir), "--port", str(port),
                                 "--workers", "1", *args],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env=env if env is not None else clean_env())
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(uri):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve.py did not start (exit {proc.poll()}):\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield SimpleNamespace(uri=uri, data_dir=data_dir, log=log_path, proc=proc)
    finally:
        _stop_group(proc)


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _stop_group(proc: subprocess.Popen) -> None:
    """The server and its uvicorn workers share the session serve.py started."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def call(uri: str, path: str, user: str | None = None, password: str | None = None, body: dict | None = None,
         host: str | None = None) -> tuple[int, str]:
    """(HTTP status, body) of a REST request (POST with a JSON ``body``), optionally with basic-auth
    credentials or another ``Host`` header."""
    req = urllib.request.Request(uri + path, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    if user is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    if host is not None:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def run_client(uri: str, spec: dict, **credentials: str) -> dict:
    """The client scenario in its own process, configured only through MLflow's env variables."""
    env = clean_env(MLFLOW_TRACKING_URI=uri, **credentials)
    out = subprocess.run([sys.executable, str(SCENARIO), json.dumps(spec)], capture_output=True, text=True,
                         timeout=180, env=env, cwd=REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def scenario_spec(tag: str) -> dict:
    return {"experiment": f"team-{tag}", "model": f"spanfirst-ner-{tag}",
            "params": {"train.lr_heads": 0.0021, "model.backbone": "tiny", "ner.top_k.beta": 3},
            "dev_scores": [0.12, 0.27, 0.31], "predict": ["김흥국", "왕십리에서"],
            "artifact_text": json.dumps({"strict_f1": 0.31, "tag": tag})}


def assert_read_back(got: dict, spec: dict) -> None:
    """What a fresh client reads back through the server is exactly what was logged."""
    assert got["status"] == "FINISHED"
    assert got["params"] == {"train.lr_heads": "0.0021", "model.backbone": "tiny", "ner.top_k.beta": "3"}
    assert got["dev_scores"] == spec["dev_scores"]
    assert got["artifact_text"] == spec["artifact_text"]
    assert got["artifact_uri"].startswith("mlflow-artifacts:/"), got["artifact_uri"]  # proxied by the server
    assert got["champion_version"] == got["registered_version"] == "1"
    assert got["champion_run_id"] == got["run_id"]
    assert got["champion_predicts"] == [len(text) for text in spec["predict"]]  # loaded back by alias


# --- a throwaway PostgreSQL cluster ---------------------------------------------------------------

def pg_bindir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: ``pg_config --bindir``, Debian's versioned folders, PATH."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versioned, key=lambda p: int(Path(p).parent.name)
                                           if Path(p).parent.name.isdigit() else 0, reverse=True)]
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def _as_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: there, run its tools as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _pg_run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    out = subprocess.run(_as_owner(cmd), capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        pytest.fail(f"PostgreSQL {what} failed ({' '.join(cmd[:2])}): {out.stdout[-2000:]}{out.stderr[-2000:]}")
    return out


def _pg_root(tmp_path_factory) -> Path:
    if os.geteuid() != 0:
        return tmp_path_factory.mktemp("postgres")
    # pytest's own temp folders are private to root; the postgres user needs a folder it owns
    # in a directory it can traverse.
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root needs a 'postgres' user to run PostgreSQL (the Debian package creates it)")
    root = Path(tempfile.mkdtemp(prefix="spanfirst-pg-"))
    os.chown(root, owner.pw_uid, owner.pw_gid)
    if subprocess.run(_as_owner(["test", "-w", str(root)])).returncode != 0:
        pytest.fail(f"the postgres user cannot reach {root}: make its parent folders traversable")
    return root


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """A real PostgreSQL cluster on a free port of 127.0.0.1 with a database ``mlflow`` owned by a
    password-protected role ``mlflow``; stopped and deleted after the session."""
    bindir = pg_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("CI: no PostgreSQL binaries (initdb, pg_ctl) found; .ci/run installs the Debian package")
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) found; install the Debian package postgresql")
    root = _pg_root(tmp_path_factory)
    data, port, password = root / "data", free_port(), "pg-pass-for-tests"
    try:
        _pg_run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--locale=C",
                 "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"], "initdb")
        _pg_run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"), "-w", "-t", "60",
                 "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"], "start")
        psql = [str(bindir / "psql"), "-h", str(root), "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1",
                "-qtA"]
        _pg_run([*psql, "-d", "postgres", "-c", f"CREATE ROLE mlflow LOGIN PASSWORD '{password}'",
                 "-c", "CREATE DATABASE mlflow OWNER mlflow"], "create database")

        def query(sql: str) -> str:
            return _pg_run([*psql, "-d", "mlflow", "-c", sql], "query").stdout.strip()

        yield SimpleNamespace(uri=f"postgresql://mlflow:{password}@127.0.0.1:{port}/mlflow",
                              uri_without_password=f"postgresql://mlflow@127.0.0.1:{port}/mlflow",
                              port=port, password=password, query=query)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def server_tools() -> SimpleNamespace:
    """The helpers above for the test modules (conftest is not importable under importlib mode)."""
    return SimpleNamespace(start=tracking_server, run_serve=run_serve, run_client=run_client, call=call,
                           spec=scenario_spec, check=assert_read_back, clean_env=clean_env, free_port=free_port,
                           admin_password=ADMIN_PASSWORD)
