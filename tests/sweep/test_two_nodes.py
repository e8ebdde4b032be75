"""A sweep joins an existing two-node cluster (--address) and its trials land on both nodes."""

from __future__ import annotations

import subprocess

import polars as pl
import pytest

from tests.sweep.local_cluster import LocalCluster
from tests.sweep.spaces_for_tests import launch_test_long
from tests.sweep.test_fault_tolerance import REPO


@pytest.fixture
def two_nodes():
    cluster = LocalCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()
    assert not cluster.pids(), "cluster processes left behind"


def test_trials_run_on_both_nodes(two_nodes, tmp_path):
    args = launch_test_long(tmp_path, "--address", two_nodes.address)
    done = subprocess.run(
        args, cwd=REPO, env=two_nodes.env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    trials = pl.read_parquet(f"{tmp_path}/run/store/trials/*.parquet")
    assert set(trials["status"]) == {"completed"}
    # one CPU per node and one per trial: two trials at a time, one on each node
    assert trials["node_id"].n_unique() == 2
