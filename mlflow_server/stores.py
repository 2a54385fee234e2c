"""Check the tracking server's backend store and artifact destination before MLflow starts.

MLflow answers a bad store URI with a stack trace from deep inside SQLAlchemy or boto3; these
checks answer with one sentence that names the option to fix.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from urllib.parse import urlsplit

BACKENDS = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
CONNECT_TIMEOUT_S = 5


class OptionError(ValueError):
    """A server option that cannot be used as given; the message names the option."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    return Path(uri.removeprefix("sqlite:///")).resolve() if uri.startswith("sqlite:///") else None


def masked(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", uri, count=1)


def backend_store_uri(uri: str | None, data_dir: Path) -> str:
    """The backend store URI to run with: SQLite under ``data_dir`` by default, or a checked one."""
    if uri is None:
        uri = f"sqlite:///{data_dir / 'mlflow.db'}"
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite":
        path = sqlite_path(uri)
        if path is None or path.name == "":
            raise OptionError(f"--backend-store-uri {uri!r}: a SQLite store is sqlite:///PATH to a file "
                              "(sqlite:///relative.db or sqlite:////absolute/path.db)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OptionError(f"--backend-store-uri {uri!r}: cannot create folder {path.parent}: "
                              f"{exc.strerror}") from None
        return f"sqlite:///{path}"
    if scheme == "postgresql" or scheme.startswith("postgresql+"):
        _check_postgres(uri)
        return uri
    if scheme == "postgres":
        raise OptionError(f"--backend-store-uri {masked(uri)!r}: write postgresql://..., not postgres:// "
                          "(SQLAlchemy does not know the short name)")
    raise OptionError(f"--backend-store-uri {masked(uri)!r}: unknown or unsupported scheme "
                      f"{scheme + '://' if scheme else '(none)'}; use {BACKENDS}")


def _check_postgres(uri: str) -> None:
    """The driver SQLAlchemy picks for ``uri`` is installed and the database answers (fail here,
    not in every worker). SQLAlchemy 2.1 reads plain ``postgresql://`` as psycopg 3, 2.0 as psycopg2."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        url = sqlalchemy.engine.make_url(uri)
        dialect = url.get_dialect()
    except (ArgumentError, ValueError) as exc:
        raise OptionError(f"--backend-store-uri {masked(uri)!r}: not a valid database URL ({exc})") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise OptionError(f"--backend-store-uri {masked(uri)!r} needs the Python driver {exc.name!r}, which is not "
                          "installed (pip install -e '.[server]' installs the drivers of postgresql:// URIs)") from None
    engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise OptionError(f"--backend-store-uri {masked(uri)!r}: cannot connect to the database: "
                          f"{reason[0] if reason else type(exc).__name__}") from None
    finally:
        engine.dispose()


def artifacts_destination(dest: str | None, data_dir: Path) -> str:
    """Where the server keeps artifacts: a local folder (default ``data_dir/artifacts``) or ``s3://``."""
    if dest is None:
        dest = str(data_dir / "artifacts")
    parts = urlsplit(dest)
    scheme = parts.scheme.lower() if "://" in dest else ""
    if scheme == "s3":
        if not parts.netloc:
            raise OptionError(f"--artifacts-destination {dest!r}: an S3 destination is s3://BUCKET[/PREFIX]")
        if importlib.util.find_spec("boto3") is None:
            raise OptionError(f"--artifacts-destination {dest!r} needs boto3, which is not installed: "
                              "pip install -e '.[server]'")
        return dest
    if scheme in ("", "file"):
        path = Path(parts.path if scheme else dest).expanduser().resolve()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OptionError(f"--artifacts-destination {dest!r}: cannot create folder {path}: "
                              f"{exc.strerror}") from None
        return str(path)
    raise OptionError(f"--artifacts-destination {dest!r}: unknown scheme {scheme}://; use a local folder "
                      "or s3://BUCKET[/PREFIX] (set MLFLOW_S3_ENDPOINT_URL for other S3-compatible stores)")
