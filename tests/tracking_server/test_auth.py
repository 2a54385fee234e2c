"""``serve.py --auth``: MLflow's basic-auth app refuses anonymous and wrong credentials, and
clients log and register through MLflow's standard ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``."""

from __future__ import annotations

import functools
import json
import stat

import pytest

pytestmark = pytest.mark.slow

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=5"
USER, USER_PASSWORD = "alice", "alice-pass-for-tests"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory, server_tools):
    data = tmp_path_factory.mktemp("auth") / "data"
    env = server_tools.clean_env(MLFLOW_AUTH_ADMIN_PASSWORD=server_tools.admin_password)
    # The credential cache on: a wrong password must still be refused after the right one passed.
    with server_tools.start(data, "--auth", "--auth-cache-ttl", "60", env=env) as server:
        yield server


@pytest.fixture
def call(auth_server, server_tools):
    """A REST request to the auth server: ``call(path, user, password, body=...)``."""
    return functools.partial(server_tools.call, auth_server.uri)


def test_anonymous_and_wrong_credentials_are_refused(call, server_tools):
    assert call(SEARCH)[0] == 401
    assert call(SEARCH, "admin", server_tools.admin_password)[0] == 200
    assert call(SEARCH, "admin", "wrong-password-123")[0] == 401  # after a cached success
    assert call(SEARCH, "nobody", server_tools.admin_password)[0] == 401
    status, body = call("/api/2.0/mlflow/runs/create", body={"experiment_id": "0"})
    assert status == 401 and "not authenticated" in body


def test_admin_logs_and_registers_through_the_standard_env_variables(auth_server, server_tools):
    spec = server_tools.spec("admin")
    got = server_tools.run_client(auth_server.uri, spec, MLFLOW_TRACKING_USERNAME="admin",
                                  MLFLOW_TRACKING_PASSWORD=server_tools.admin_password)
    server_tools.check(got, spec)


def test_a_created_user_logs_in_its_own_experiment_but_only_reads_others(auth_server, call, server_tools):
    status, body = call("/api/2.0/mlflow/users/create", "admin", server_tools.admin_password,
                        body={"username": USER, "password": USER_PASSWORD})
    assert status == 200, body
    assert (json.loads(body)["user"]["username"], json.loads(body)["user"]["is_admin"]) == (USER, False)

    spec = server_tools.spec("alice")
    got = server_tools.run_client(auth_server.uri, spec, MLFLOW_TRACKING_USERNAME=USER,
                                  MLFLOW_TRACKING_PASSWORD=USER_PASSWORD)
    server_tools.check(got, spec)

    # default permission READ: she sees an experiment the admin made but cannot log into it
    # (nor manage users)
    status, body = call("/api/2.0/mlflow/experiments/create", "admin", server_tools.admin_password,
                        body={"name": "admin-only"})
    assert status == 200, body
    admin_experiment = json.loads(body)["experiment_id"]
    assert call(f"/api/2.0/mlflow/experiments/get?experiment_id={admin_experiment}",
                USER, USER_PASSWORD)[0] == 200
    assert call("/api/2.0/mlflow/runs/create", USER, USER_PASSWORD,
                body={"experiment_id": admin_experiment})[0] == 403
    # ... until the admin grants her EDIT on it
    grant = {"username": USER, "resource_type": "experiment", "resource_id": admin_experiment, "permission": "EDIT"}
    assert call("/api/3.0/mlflow/users/permissions/grant", "admin", server_tools.admin_password, body=grant)[0] == 200
    assert call("/api/2.0/mlflow/runs/create", USER, USER_PASSWORD,
                body={"experiment_id": admin_experiment})[0] == 200
    assert call("/api/2.0/mlflow/users/create", USER, USER_PASSWORD,
                body={"username": "mallory", "password": "mallory-pass-123"})[0] == 403


def test_auth_files_stay_private_and_hold_no_password(auth_server, server_tools):
    ini = auth_server.data_dir / "basic_auth.ini"
    assert stat.S_IMODE(ini.stat().st_mode) == 0o600
    text = ini.read_text()
    assert server_tools.admin_password not in text
    assert f"database_uri = sqlite:///{auth_server.data_dir / 'basic_auth.db'}" in text  # beside mlflow.db
    assert (auth_server.data_dir / "mlflow.db").is_file()
    assert server_tools.admin_password not in auth_server.log.read_text()
