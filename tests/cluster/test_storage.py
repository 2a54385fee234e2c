"""Sweep storage given as a URI (read through pyarrow, as for s3://) and --resume on it; a URI
pyarrow cannot open is a one-line error naming the option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from spanfirst.sweep.runner import STATE_FILE, find_resume_dir
from spanfirst.sweep.storage import Storage, StorageError

REPO = Path(__file__).resolve().parents[2]


def test_resume_finds_the_newest_sweep_under_a_uri(tmp_path):
    storage = Storage.parse((tmp_path / "sweeps").as_uri())
    assert storage.root.startswith("file://") and storage.is_local
    for name in ("quick-20260101-000000", "quick-20260102-000000", "other-20260103-000000"):
        Storage(storage.child(name)).write_bytes(b"{}", STATE_FILE)
    (tmp_path / "sweeps" / "quick-20260104-000000").mkdir()  # no state file: not a sweep
    space = SimpleNamespace(name="quick", path=Path("quick.yaml"))
    found = find_resume_dir(storage, space, "latest")
    assert found.root == storage.child("quick-20260102-000000")
    assert found.read_text(STATE_FILE) == "{}"
    assert find_resume_dir(storage, space, storage.child("quick-20260101-000000")).exists(STATE_FILE)
    with pytest.raises(FileNotFoundError, match="not a sweep folder"):
        find_resume_dir(storage, space, storage.child("quick-20260104-000000"))
    with pytest.raises(FileNotFoundError, match="no sweep of quick.yaml to resume"):
        find_resume_dir(Storage.parse((tmp_path / "empty").as_uri()), space, "latest")


def test_child_keeps_a_uri_query():
    s = Storage("s3://bucket/sweeps?endpoint_override=127.0.0.1:9000&scheme=http")
    assert s.child("run-1", "trials") == "s3://bucket/sweeps/run-1/trials?endpoint_override=127.0.0.1:9000&scheme=http"
    assert not s.is_local and Storage("/mnt/nfs/sweeps").is_local


def test_bad_storage_uri_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError, match=r"^--storage nope://x: cannot open this URI with pyarrow"):
        Storage.parse("nope://x")
    out = subprocess.run([sys.executable, str(REPO / "pipelines" / "sweep.py"), "--storage", "nope://x"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: --storage nope://x: cannot open this URI"), out.stderr
