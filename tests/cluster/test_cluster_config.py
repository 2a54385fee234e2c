"""cluster.yaml against Ray's own cluster-config schema, and its shell commands run for real
(in a scratch HOME) to see what environment each node type ends up with. No AWS calls."""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text(encoding="utf-8"))


def prepared(cfg: dict) -> dict:
    """What ``ray up`` does to the file before it talks to a cloud: fill defaults, then validate."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    out = prepare_config(copy.deepcopy(cfg))
    validate_config(out)
    return out


def test_cluster_yaml_is_a_valid_ray_cluster_config(config):
    cfg = prepared(config)
    assert cfg["provider"]["type"] == "aws"
    head = cfg["head_node_type"]
    workers = {k: v for k, v in cfg["available_node_types"].items() if k != head}
    assert cfg["available_node_types"][head]["max_workers"] == 0
    (gpu,) = workers.values()
    assert gpu["node_config"]["InstanceType"].startswith(("g", "p"))  # a GPU instance family
    assert gpu["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert 0 <= gpu["min_workers"] < gpu["max_workers"] <= cfg["max_workers"]  # it autoscales


@pytest.mark.parametrize("where", ["top", "node_type"])
def test_a_typo_is_rejected_by_the_schema(config, where):
    import jsonschema

    bad = copy.deepcopy(config)
    if where == "top":
        bad["max_worker"] = bad.pop("max_workers")
    else:
        node = bad["available_node_types"]["worker.gpu"]
        node["max_worker"] = node.pop("max_workers")
    with pytest.raises(jsonschema.ValidationError, match="'max_worker' was unexpected"):
        prepared(bad)


def test_every_command_is_valid_bash(config):
    keys = ["initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands"]
    for key in keys:
        for cmd in config[key]:
            out = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)
            assert out.returncode == 0, f"{key}: {cmd!r}: {out.stderr}"


def _node_env(config: dict, home: Path, role: str, head_ip: str) -> dict[str, str]:
    """Run the commands that write a node's environment (those touching ~/spanfirst.env) in a
    scratch HOME, as the launcher would (RAY_HEAD_IP is set for worker commands), then read the
    environment a login shell on that node gets."""
    (home / ".spanfirst").mkdir(parents=True)
    (home / ".spanfirst" / "mlflow-admin-password").write_text("s3cret\n")
    (home / ".bashrc").write_text("case $- in *i*) ;; *) return;; esac\n")  # Ubuntu's guard
    cmds = [c for c in config["setup_commands"] + config[f"{role}_setup_commands"] if "spanfirst.env" in c]
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "RAY_HEAD_IP": head_ip}
    for cmd in cmds:
        subprocess.run(["bash", "-c", cmd], env=env if role == "worker" else {**env, "RAY_HEAD_IP": ""},
                       check=True, capture_output=True)
    out = subprocess.run(["bash", "-c", ". ~/.bashrc; env"], env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
                         check=True, capture_output=True, text=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def test_every_node_points_at_the_head_tracking_server_with_token_auth(config, tmp_path):
    own_ip = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout.split()[0]
    head = _node_env(config, tmp_path / "head", "head", "")
    worker = _node_env(config, tmp_path / "worker", "worker", "10.1.2.3")
    assert head["MLFLOW_TRACKING_URI"] == f"http://{own_ip}:5000"  # the head's own private address
    assert worker["MLFLOW_TRACKING_URI"] == "http://10.1.2.3:5000"  # the head's, as the launcher gives it
    for env in (head, worker):
        assert env["RAY_AUTH_MODE"] == "token"
        assert env["MLFLOW_TRACKING_USERNAME"] == "admin" and env["MLFLOW_TRACKING_PASSWORD"] == "s3cret"
    # Ray's token and the MLflow password come from the user's machine, not from the repository.
    mounts = config["file_mounts"]
    assert mounts["/home/ubuntu/.ray/auth_token"] == "~/.ray/auth_token"
    assert mounts["/home/ubuntu/.spanfirst/mlflow-admin-password"].startswith("~/")


def test_sweep_storage_is_cloud_storage_not_a_local_path(config, tmp_path):
    from spanfirst.sweep.storage import Storage

    env = _node_env(config, tmp_path / "w", "worker", "10.1.2.3")
    storage = env["SPANFIRST_SWEEP_STORAGE"]
    assert storage.startswith("s3://") and not Storage(storage).is_local
    assert "CHANGE-ME" in storage  # a placeholder the user must replace, marked as such
    assert env["SPANFIRST_BUCKET"] in storage


def test_head_runs_the_tracking_server_on_its_private_address_and_ray_only_on_localhost(config):
    start = config["head_start_ray_commands"]
    (serve,) = [c for c in start if "mlflow_server/serve.py" in c]
    assert "HEAD_IP=$(hostname -I | awk '{print $1}')" in serve
    args = shlex.split(serve.split("nohup", 1)[1].split(">", 1)[0])
    opt = {a: args[i + 1] for i, a in enumerate(args) if a.startswith("--") and i + 1 < len(args)}
    assert opt["--host"] == "$HEAD_IP" and opt["--port"] == "5000"
    assert "$HEAD_IP:5000" in opt["--allowed-hosts"].split(",") and "--auth" in args
    assert opt["--artifacts-destination"].startswith("$SPANFIRST_BUCKET/")
    assert (REPO / "mlflow_server" / "serve.py").is_file()
    assert start.index(serve) < max(i for i, c in enumerate(start) if "ray start --head" in c)
    (ray_start,) = [c for c in start if "ray start --head" in c]
    assert "--dashboard-host=127.0.0.1" in ray_start
    # No inbound rule beyond Ray's defaults (intra-cluster, SSH): nothing public for the dashboard.
    assert "security_group" not in config["provider"]
    assert not re.search(r"0\.0\.0\.0", yaml.safe_dump(config))
