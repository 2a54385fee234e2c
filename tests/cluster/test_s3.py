"""The sweep against real object storage: an S3-compatible server (moto's, started here on
127.0.0.1) as the sweep's ``--storage`` and as the tracking server's artifact store, with the AWS
variables a user would set. A sweep (its trials checkpointing to S3 every epoch), a ``--resume``
that reads its state back from S3, the registration, and ``mlflow models serve`` of the champion
(its artifacts downloaded through the tracking server from S3) all run against it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from spanfirst.serving.server import ModelServer, free_port

BUCKET = "spanfirst-test"
SPACE = """\
base: {base}
scheduler: {{grace_period: 1, reduction_factor: 2, max_epochs: 2}}
search: {{algorithm: random, num_samples: 2, max_concurrent: 2, seed: 8}}
trial: {{workers: 1, cpus_per_worker: 1, max_failures: 1}}
mlflow: {{experiment: s3-sweep, registered_model: s3-ner}}
overrides: {{data.max_train_examples: 120, data.max_dev_examples: 40, train.early_stopping_patience: 0}}
space:
  train.lr_heads: {{loguniform: [1.0e-3, 3.0e-3]}}
"""


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"{url} did not answer:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@pytest.fixture
def s3(tmp_path):
    """A moto S3 server on 127.0.0.1 and the environment a user of real S3 would set."""
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if moto is None:
        if os.environ.get("CI"):
            pytest.fail("CI: moto_server missing; .ci/run installs the dev extra (moto[server])")
        pytest.skip("moto[server] is not installed (pip install -e '.[dev]')")
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
           "MLFLOW_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}", "RAY_DEDUP_LOGS": "1"}
    proc = start([moto, "-H", "127.0.0.1", "-p", str(port)], tmp_path / "moto.log", env)
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/", proc, tmp_path / "moto.log")
        import boto3

        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=BUCKET)
        yield env, client
    finally:
        stop(proc)


@pytest.mark.slow
def test_sweep_resume_register_and_serve_on_s3(tmp_path, s3, sweep_tools):
    env, client = s3
    port = free_port()
    server = start([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                    "--artifacts-destination", f"s3://{BUCKET}/mlflow"], tmp_path / "server.log", env)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", server, tmp_path / "server.log")
        space = sweep_tools.write_space(tmp_path / "s3.yaml", SPACE.format(base=sweep_tools.configs / "quickstart_ner.yaml"))
        args = ["--tracking-uri", uri, "--storage", f"s3://{BUCKET}/sweeps"]

        def sweep(*extra: str) -> str:
            out = subprocess.run(sweep_tools.cmd(space, *args, *extra), cwd=tmp_path, capture_output=True, text=True,
                                 timeout=420, env=env)
            assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
            return out.stdout

        first = sweep()
        assert "registered model: s3-ner version 1 (alias champion)" in first, first[-3000:]
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                for o in page.get("Contents", [])]
        sweep_keys = [k for k in keys if k.startswith("sweeps/")]
        assert any(k.endswith("/sweep.json") for k in sweep_keys) and any(k.endswith("/trials.csv") for k in sweep_keys)
        # every epoch checkpointed for restarts (trial.max_failures: 1): model files and training state
        assert any(k.endswith("/training_state.pt") for k in sweep_keys), sweep_keys
        assert any(k.endswith("/heads.safetensors") and "/trials/" in k for k in sweep_keys), sweep_keys
        assert any(k.startswith("mlflow/") and k.endswith("heads.safetensors") for k in keys), keys  # the model
        assert not any(k.startswith("mlflow/") and k.endswith("training_state.pt") for k in keys)  # model files only

        # --resume reads the sweep's state back from S3; its trials are all finished: none runs again
        again = sweep("--resume")
        assert "2 trials" in again and "registered model: s3-ner version 2" in again, again[-3000:]

        from mlflow import MlflowClient

        c = MlflowClient(uri, registry_uri=uri)
        exp = c.get_experiment_by_name("s3-sweep")
        children = [r for r in c.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
        assert len(children) == 2 and all("spanfirst.restarts" not in r.data.tags for r in children)
        assert c.get_model_version_by_alias("s3-ner", "champion").version == "1"

        with ModelServer("models:/s3-ner@champion", tmp_path / "serve.log", {**env, "MLFLOW_TRACKING_URI": uri}) as srv:
            status, body = srv.client().invoke({"inputs": ["가수 김흥국이 왕십리에서 콘서트를 열었다."]})
        assert status == 200 and len(body["predictions"]) == 1, (status, body)
    finally:
        stop(server)
