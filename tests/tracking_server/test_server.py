"""The team tracking server (``mlflow_server/serve.py``) for real: SQLite and PostgreSQL stores,
artifacts served by the server, the model registry, and options it must refuse."""

from __future__ import annotations

import sqlite3
import stat

import pytest

pytestmark = pytest.mark.slow

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"
INVALID_HOST = "Invalid Host header - possible DNS rebinding attack detected"  # MLflow's answer


def test_sqlite_server_logs_runs_and_registers_models(tmp_path, server_tools):
    data = tmp_path / "data"
    with server_tools.start(data, "--allowed-hosts", "mlflow.team.test,127.0.0.1:*") as server:
        spec = server_tools.spec("sqlite")
        got = server_tools.run_client(server.uri, spec)
        server_tools.check(got, spec)
        # MLflow's Host-header check (DNS rebinding) is on and takes --allowed-hosts
        assert server_tools.call(server.uri, SEARCH, host="mlflow.team.test")[0] == 200
        assert server_tools.call(server.uri, SEARCH, host="evil.example") == (403, INVALID_HOST)
    # The defaults put everything under --data-dir: the SQLite store and the served artifacts.
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    with sqlite3.connect(data / "mlflow.db") as db:
        assert db.execute("select count(*) from runs where run_uuid = ?", (got["run_id"],)).fetchone() == (1,)
        assert db.execute("select name from registered_models").fetchall() == [(spec["model"],)]
    reports = list((data / "artifacts").rglob("report.json"))
    assert [p.read_text() for p in reports] == [spec["artifact_text"]]


def test_postgres_server_with_auth_keeps_runs_models_and_users_in_postgres(tmp_path, postgres, server_tools):
    # The database password through libpq's PGPASSWORD, off the command line (as the README advises)
    env = server_tools.clean_env(MLFLOW_AUTH_ADMIN_PASSWORD=server_tools.admin_password, PGPASSWORD=postgres.password)
    with server_tools.start(tmp_path / "data", "--backend-store-uri", postgres.uri_without_password, "--auth",
                            "--auth-cache-ttl", "60", env=env) as server:
        spec = server_tools.spec("postgres")
        got = server_tools.run_client(server.uri, spec, MLFLOW_TRACKING_USERNAME="admin",
                                      MLFLOW_TRACKING_PASSWORD=server_tools.admin_password)
        server_tools.check(got, spec)
        log = server.log.read_text()
    assert postgres.query(f"select count(*) from runs where run_uuid = '{got['run_id']}'") == "1"
    assert postgres.query("select name from registered_models") == spec["model"]
    assert postgres.query("select username from users where is_admin") == "admin"  # auth tables beside them
    assert postgres.password not in log


BAD_OPTIONS = [
    (["--backend-store-uri", "mongodb://127.0.0.1/mlflow"], {}, "--backend-store-uri 'mongodb://127.0.0.1/mlflow': "
     "unknown or unsupported scheme"),
    (["--backend-store-uri", "postgres://u@127.0.0.1/db"], {}, "write postgresql://"),
    (["--artifacts-destination", "gs://bucket/x"], {}, "--artifacts-destination 'gs://bucket/x': unknown scheme"),
    (["--auth"], {}, "--auth needs the admin password in the environment variable MLFLOW_AUTH_ADMIN_PASSWORD"),
    (["--auth"], {"MLFLOW_AUTH_ADMIN_PASSWORD": "short"}, "Password must be at least 12 characters"),
    (["--host", "0.0.0.0"], {}, "set --allowed-hosts"),
    (["--allowed-hosts", "*"], {}, "--allowed-hosts '*' turns off"),
    (["--port", "70000"], {}, "--port 70000"),
    (["--auth-cache-ttl", "60"], {}, "--auth-cache-ttl applies only with --auth"),
]


@pytest.mark.parametrize(("args", "env", "message"), BAD_OPTIONS, ids=lambda v: str(v)[:40])
def test_bad_options_fail_with_a_message_naming_them(tmp_path, server_tools, args, env, message):
    out = server_tools.run_serve("--data-dir", str(tmp_path / "data"), *args, env=server_tools.clean_env(**env))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_unreachable_postgres_is_named_with_the_password_masked(tmp_path, server_tools):
    uri = f"postgresql://team:not-this-secret@127.0.0.1:{server_tools.free_port()}/mlflow"  # nothing listens
    out = server_tools.run_serve("--data-dir", str(tmp_path / "data"), "--backend-store-uri", uri)
    assert out.returncode == 2, out.stderr
    assert "--backend-store-uri 'postgresql://team:***@127.0.0.1:" in out.stderr
    assert "cannot connect to the database" in out.stderr
    assert "not-this-secret" not in out.stderr and "Traceback" not in out.stderr
