"""Start the team's MLflow tracking server in one command.

    python mlflow_server/serve.py [--backend-store-uri URI] [--artifacts-destination PATH_OR_S3_URI]
        [--host 127.0.0.1] [--port 5000] [--allowed-hosts HOSTS] [--auth] [--workers N]

Defaults: a SQLite store and served artifacts in ``mlflow_server/data/``, the model registry in
the same store, bound to 127.0.0.1. The options are checked first (each error names its option),
then this process runs ``mlflow server`` with MLflow's security middleware left on.
See mlflow_server/README.md.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

import basic_auth
from stores import OptionError, artifacts_destination, backend_store_uri, masked

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "data"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
# MLflow's GenAI job runner (scorers, prompt optimisation) starts ~8 more processes; this project
# has no use for it. Set the variable to true to have it anyway.
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    ap = argparse.ArgumentParser(prog="mlflow_server/serve.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                    help="folder of the default SQLite store, artifacts and auth files (default: mlflow_server/data)")
    ap.add_argument("--backend-store-uri", help="sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB "
                                                 "(default: sqlite:///DATA_DIR/mlflow.db)")
    ap.add_argument("--artifacts-destination", help="local folder or s3://BUCKET[/PREFIX] the server stores "
                                                     "artifacts in (default: DATA_DIR/artifacts)")
    ap.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    ap.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    ap.add_argument("--allowed-hosts", help="comma-separated Host headers the server answers (MLflow's DNS-rebinding "
                                             "protection); required when --host is not a loopback address")
    ap.add_argument("--workers", type=int, default=4, help="server worker processes (default: 4)")
    ap.add_argument("--auth", action="store_true",
                    help="run MLflow's basic-auth app; the admin password comes from $MLFLOW_AUTH_ADMIN_PASSWORD")
    ap.add_argument("--default-permission", choices=basic_auth.PERMISSIONS,
                    help="with --auth: what every user may do with experiments and models they did not create "
                         "(default: READ)")
    ap.add_argument("--auth-cache-ttl", type=int, metavar="SECONDS",
                    help="with --auth: remember a verified password this long per worker (default 0: off, every "
                         "request pays a scrypt check; a password change reaches other workers only after it)")
    ap.add_argument("--auth-database-uri", help="with --auth: users and permissions store (default: basic_auth.db "
                                                 "beside a SQLite store, else the backend store's database)")
    return ap, ap.parse_args(argv)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_network(args: argparse.Namespace) -> None:
    """Exposing the server beyond this machine needs an explicit list of the names clients use."""
    if not 1 <= args.port <= 65535:
        raise OptionError(f"--port {args.port}: not a TCP port (1-65535)")
    if args.workers < 1:
        raise OptionError(f"--workers {args.workers}: at least 1")
    check_auth_options(args)
    hosts = [h.strip() for h in (args.allowed_hosts or "").split(",") if h.strip()]
    if "*" in hosts:
        raise OptionError("--allowed-hosts '*' turns off the server's Host-header check; list the names "
                          "clients use instead (wildcards such as 10.0.* are allowed)")
    if not is_loopback(args.host) and not hosts:
        raise OptionError(f"--host {args.host} makes the server reachable from other machines: set --allowed-hosts "
                          "to the host names/addresses clients use (e.g. mlflow.example.com,10.0.0.5:5000), "
                          "and prefer --auth behind a TLS reverse proxy (mlflow_server/README.md)")
    if not is_loopback(args.host) and not args.auth:
        print(f"warning: --host {args.host} without --auth: anyone who reaches port {args.port} can read and "
              "change every run and model", file=sys.stderr)


def check_auth_options(args: argparse.Namespace) -> None:
    """The auth settings need --auth (a silently ignored one would mislead); fill their defaults."""
    given = [name for name, value in (("--default-permission", args.default_permission),
                                      ("--auth-cache-ttl", args.auth_cache_ttl),
                                      ("--auth-database-uri", args.auth_database_uri)) if value is not None]
    if given and not args.auth:
        raise OptionError(f"{given[0]} applies only with --auth")
    if args.auth_cache_ttl is not None and args.auth_cache_ttl < 0:
        raise OptionError(f"--auth-cache-ttl {args.auth_cache_ttl}: seconds, 0 or more")
    args.default_permission = args.default_permission or "READ"
    args.auth_cache_ttl = args.auth_cache_ttl or 0


def mlflow_args(args: argparse.Namespace, backend: str, artifacts: str) -> list[str]:
    """The ``mlflow server`` command line this amounts to."""
    cmd = ["server", "--backend-store-uri", backend,
           "--serve-artifacts", "--artifacts-destination", artifacts,
           "--host", args.host, "--port", str(args.port), "--workers", str(args.workers)]
    if args.allowed_hosts:
        cmd += ["--allowed-hosts", args.allowed_hosts]
    if args.auth:
        cmd += ["--app-name", "basic-auth"]
    return cmd


def main(argv: list[str] | None = None) -> None:
    ap, args = parse_args(argv)
    try:
        check_network(args)
        data_dir = args.data_dir.expanduser().resolve()
        try:  # private to the owner: it holds the databases (password hashes with --auth)
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise OptionError(f"--data-dir {str(args.data_dir)!r}: cannot create it: {exc.strerror}") from None
        backend = backend_store_uri(args.backend_store_uri, data_dir)
        artifacts = artifacts_destination(args.artifacts_destination, data_dir)
        os.environ.setdefault(JOB_EXECUTION_ENV, "false")
        if args.auth:
            basic_auth.prepare(data_dir, backend, args.auth_database_uri, args.default_permission,
                               args.auth_cache_ttl)
    except OptionError as exc:
        ap.error(str(exc))
    print(f"MLflow tracking server on http://{args.host}:{args.port} - backend {masked(backend)}, artifacts "
          f"{artifacts}, auth {'on' if args.auth else 'off'}", file=sys.stderr, flush=True)
    # MLflow's own CLI in this process: the modules the auth check imported are not imported again.
    from mlflow.cli import cli

    cli.main(args=mlflow_args(args, backend, artifacts), prog_name="mlflow")


if __name__ == "__main__":
    main()
