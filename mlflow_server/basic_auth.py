"""MLflow's basic-auth app for the tracking server: its config file, secrets and admin user.

The admin's password never touches a file: MLflow reads it from ``MLFLOW_AUTH_ADMIN_PASSWORD``
(and the name from ``MLFLOW_AUTH_ADMIN_USERNAME``) when it first creates the admin user. The
generated ``basic_auth.ini`` holds the auth database URI (which may carry a database password),
so it is written with mode 0600 in the server's data folder, outside the tracked files.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path

from stores import OptionError, masked, sqlite_path

PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"
USERNAME_ENV = "MLFLOW_AUTH_ADMIN_USERNAME"
CONFIG_ENV = "MLFLOW_AUTH_CONFIG_PATH"
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"  # CSRF key of the auth app's sign-up form
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
DEFAULT_ADMIN = "admin"


def auth_database_uri(backend_uri: str, override: str | None) -> str:
    """Users and permissions live beside the tracking data: ``basic_auth.db`` next to a SQLite
    store, the same database for PostgreSQL (MLflow's auth tables and migration table have their
    own names)."""
    if override:
        return override
    path = sqlite_path(backend_uri)
    return f"sqlite:///{path.parent / 'basic_auth.db'}" if path else backend_uri


def write_config(path: Path, database_uri: str, admin_username: str, default_permission: str,
                 cache_ttl_s: int = 0) -> Path:
    """Write the auth app's ini (no password in it) readable by the owner only."""
    text = ("[mlflow]\n"
            f"default_permission = {default_permission}\n"
            f"database_uri = {database_uri.replace('%', '%%')}\n"
            f"admin_username = {admin_username.replace('%', '%%')}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            f"auth_cache_ttl_seconds = {cache_ttl_s}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)  # an existing file keeps its old mode through O_CREAT
        fh.write(text)
    return path


def prepare(data_dir: Path, backend_uri: str, auth_db_uri: str | None, default_permission: str,
            cache_ttl_s: int = 0) -> None:
    """Check the auth settings, write the ini, set this process's environment for MLflow (which
    serve.py runs in-process) and create the admin user.

    The admin user is created here, before MLflow starts, so that a missing or too short
    password is one clear error rather than a stack trace.
    """
    if not os.environ.get(PASSWORD_ENV):
        raise OptionError(f"--auth needs the admin password in the environment variable {PASSWORD_ENV} "
                          f"(at least 12 characters; the admin name comes from {USERNAME_ENV}, default "
                          f"{DEFAULT_ADMIN!r})")
    if importlib.util.find_spec("flask_wtf") is None:
        raise OptionError("--auth needs Flask-WTF (MLflow's auth extra), which is not installed: "
                          "pip install -e '.[server]'")
    admin = os.environ.get(USERNAME_ENV) or DEFAULT_ADMIN
    database_uri = auth_database_uri(backend_uri, auth_db_uri)
    config = write_config(data_dir / "basic_auth.ini", database_uri, admin, default_permission, cache_ttl_s)
    os.environ.update({CONFIG_ENV: str(config), USERNAME_ENV: admin})
    # One key for all workers of this server; set it yourself to share it between servers.
    os.environ.setdefault(SECRET_KEY_ENV, secrets.token_hex(32))
    _bootstrap_admin(database_uri)


def _bootstrap_admin(database_uri: str) -> None:
    """Run MLflow's own admin bootstrap (idempotent; MLflow's CLI repeats it cheaply)."""
    from mlflow.exceptions import MlflowException

    try:
        from mlflow.server.auth import bootstrap_admin_user  # reads MLFLOW_AUTH_CONFIG_PATH on import

        bootstrap_admin_user()
    except MlflowException as exc:
        raise OptionError(f"--auth: {exc.message}") from None
    except Exception as exc:  # the auth database is unreachable or unusable
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise OptionError(f"--auth: cannot set up the auth database {masked(database_uri)!r}: "
                          f"{reason[0] if reason else type(exc).__name__}") from None
