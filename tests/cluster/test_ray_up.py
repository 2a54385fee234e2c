"""``ray up`` for real: Ray's cluster launcher (local provider) brings up a head on 127.0.0.1 and a
worker on 127.0.0.2 of this machine over SSH (an sshd this test starts on a free port, with a key
it generates), running setup and start commands shaped like cluster.yaml's; MLflow's tracking
server starts on the head; ``ray job submit`` runs a tiny sweep whose trials train on both nodes;
``ray down`` stops it all.

Opt-in (``-m cluster``): it needs OpenSSH's server and rsync (Debian: ``apt-get install
openssh-server rsync``), runs ``ray stop`` on this machine through ``ray down`` (stopping every Ray
of this user here), needs 127.0.0.2:22 free for its sshd (the head's autoscaler reaches the worker
there), and writes ``~/ray_bootstrap_config.yaml`` and ``~/ray_bootstrap_key.pem`` as the launcher
does on a real head, and a line in ``~/.bashrc`` as cluster.yaml's setup does (removed after).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from spanfirst.serving.server import free_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HERE = Path(__file__).resolve().parent / "ray_up"
REPO = Path(__file__).resolve().parents[2]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

SPACE = """\
base: {base}
scheduler: {{grace_period: 1, reduction_factor: 2, max_epochs: 1}}
search: {{algorithm: random, num_samples: 2, max_concurrent: 2, seed: 3}}
trial: {{workers: 1, cpus_per_worker: 1}}
mlflow: {{experiment: ray-up-sweep, registered_model: ray-up-ner}}
overrides: {{data.max_train_examples: 80, data.max_dev_examples: 40, train.early_stopping_patience: 0}}
space:
  train.lr_heads: {{loguniform: [1.0e-3, 3.0e-3]}}
"""


def run(cmd: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd``; its output goes to ``log`` also when it is stopped for running past ``timeout``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        stderr += f"\n(stopped after {timeout:.0f} s)"
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n{stdout}\n{stderr}\n(exit {proc.returncode})\n")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@pytest.fixture
def sshd(tmp_path):
    """An sshd for this test's key only: on 127.0.0.1 at a free port (``ray up`` reaches the head
    through ``auth.ssh_proxy_command``), and on 127.0.0.2 at port 22, because the head's autoscaler,
    which starts the worker, is handed the config without the proxy command (Ray drops it)."""
    missing = [name for name, path in (("sshd", SSHD), ("rsync", shutil.which("rsync") or "")) if not Path(path).is_file()]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI: {', '.join(missing)} missing; .ci/run installs openssh-server and rsync")
        pytest.skip(f"{', '.join(missing)} missing (Debian: apt-get install openssh-server rsync)")
    if not port_free("127.0.0.2", 22):
        pytest.skip("127.0.0.2:22 is taken or needs root: the head's autoscaler reaches the worker there")
    keys = tmp_path / "ssh"
    keys.mkdir()
    for name in ("host_key", "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    shutil.copy(keys / "id_ed25519.pub", keys / "authorized_keys")
    port = free_port()
    config = keys / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress 127.0.0.1:{port}", "ListenAddress 127.0.0.2:22", f"HostKey {keys / 'host_key'}",
        f"AuthorizedKeysFile {keys / 'authorized_keys'}", f"PidFile {keys / 'sshd.pid'}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
        "PermitRootLogin prohibit-password", "MaxStartups 50", "MaxSessions 50", "",
    ]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=(tmp_path / "sshd.log").open("w"),
                            stderr=subprocess.STDOUT)
    time.sleep(1)
    if proc.poll() is not None:
        pytest.fail(f"sshd did not start:\n{(tmp_path / 'sshd.log').read_text()}")
    try:
        yield port, keys / "id_ed25519"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def alive_nodes(dashboard: str) -> list[dict]:
    """The cluster's live nodes, from the dashboard's state API (token auth: Ray's default token file)."""
    token = (Path.home() / ".ray" / "auth_token").read_text().strip()
    request = urllib.request.Request(f"{dashboard}/api/v0/nodes", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            nodes = json.load(resp)["data"]["result"]["result"]
    except (OSError, ValueError, KeyError):
        return []
    return [n for n in nodes if n.get("state") == "ALIVE"]


def test_ray_up_job_submit_sweep_on_two_nodes_then_ray_down(tmp_path, sshd, sweep_tools):
    from mlflow import MlflowClient

    ssh_port, key = sshd
    home = tmp_path / "home"  # both "nodes" keep their files here (this machine's disk, shared)
    home.mkdir()
    ports = {name: free_port() for name in ("gcs_port", "dashboard_port", "mlflow_port", "head_agent_port",
                                             "worker_agent_port")}
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text((HERE / "local-cluster.yaml").read_text().format(
        cluster_name=f"spanfirst-test-{ports['gcs_port']}", user=os.environ.get("USER") or "root", key=key,
        python=sys.executable, proxy=HERE / "port_proxy.py", ssh_port=ssh_port, storage=tmp_path / "sweeps",
        venv_bin=Path(sys.executable).parent, home=home, **ports))
    log = tmp_path / "commands.log"
    dashboard = f"http://127.0.0.1:{ports['dashboard_port']}"
    # Ray's v2 autoscaler (ray up's default since 2.5x) counts the local provider's head as a node of
    # the one node type the workers share, so min_workers is met and the worker never starts: v1
    env = {**os.environ, "RAY_DEDUP_LOGS": "1", "RAY_UP_enable_autoscaler_v2": "0", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_AUTH_TOKEN", None)  # the nodes and this test share Ray's default token file, ~/.ray/auth_token
    env.pop("RAY_ADDRESS", None)
    up = run(["ray", "up", "-y", "--no-config-cache", str(cluster)], log, 600, env)
    try:
        assert up.returncode == 0, log.read_text()[-6000:]
        deadline = time.time() + 240  # the head's autoscaler starts the worker over SSH after ray up returns
        while len(alive_nodes(dashboard)) < 2:
            assert time.time() < deadline, f"the worker node never joined\n{log.read_text()[-4000:]}"
            time.sleep(2)
        nodes = {n["node_id"]: n["node_ip"] for n in alive_nodes(dashboard)}
        assert len(nodes) == 2 and "127.0.0.2" in nodes.values(), nodes  # (Ray may name the head by its LAN address)

        space = sweep_tools.write_space(tmp_path / "space.yaml", SPACE.format(base=sweep_tools.configs / "quickstart_ner.yaml"))
        mlflow_uri = f"http://127.0.0.1:{ports['mlflow_port']}"
        # the venv's interpreter by path: the job's shell finds pyenv's shims before the venv (this
        # machine's ~/.bashrc puts them first; a cluster node's has no pyenv)
        job = run(["ray", "job", "submit", "--address", dashboard, "--", sys.executable, str(REPO / "pipelines" / "sweep.py"),
                   str(space), "--address", "auto", "--tracking-uri", mlflow_uri,
                   "--storage", str(tmp_path / "sweeps"), "--shared-storage"], log, 600, env)
        assert job.returncode == 0 and "registered model: ray-up-ner version 1 (alias champion)" in job.stdout, \
            log.read_text()[-6000:]

        c = MlflowClient(mlflow_uri, registry_uri=mlflow_uri)
        exp = c.get_experiment_by_name("ray-up-sweep")
        children = [r for r in c.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
        assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
        trained_on = {r.data.tags["ray.node_id"] for r in children}
        assert trained_on == set(nodes), (trained_on, nodes)  # one trial per node
    finally:
        down = run(["ray", "down", "-y", str(cluster)], log, 180, env)
        if (home / "mlflow.pid").exists():
            subprocess.run(["kill", (home / "mlflow.pid").read_text().strip()], check=False)
        bashrc = Path.home() / ".bashrc"  # the line setup_commands added, as cluster.yaml's do
        if bashrc.exists():
            bashrc.write_text("".join(line for line in bashrc.read_text().splitlines(keepends=True)
                                      if str(home / "spanfirst.env") not in line))
    assert down.returncode == 0, log.read_text()[-4000:]
    assert not alive_nodes(dashboard)
    left = subprocess.run(["pgrep", "-f", f"gcs_server.*{ports['gcs_port']}"], capture_output=True, text=True)
    assert not left.stdout.strip(), left.stdout
