"""A separate Flink cluster on this machine, as `vectorstream flink start` makes it (Flink
1.19.3's distribution from PyPI: a job manager, two task managers, a Python worker pool),
and the pipeline submitted to it with the `flink` preset: Beam's Java KafkaIO in the task
managers, our Python code in this test's pipeline process (LOOPBACK: the embedded store
takes one writer process, and CI has no Qdrant server) or, against a real Qdrant server
(VECTORSTREAM_QDRANT_URL), in the worker pool's processes.

One task manager is killed with SIGKILL during a streaming run and started again: Flink
restores the job from its last checkpoint, and nothing is lost or stored twice.
"""
import json
import os
import signal
import threading
import time
import urllib.request

import pytest

from conftest import run_end_to_end
from vectorstream.io.produce import produce
from vectorstream.runners import flink

REST_PORT = int(os.environ.get("VECTORSTREAM_TEST_FLINK_PORT", "38081"))
POOL_PORT = REST_PORT + 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    local = flink.LocalFlink(str(tmp_path_factory.mktemp("flink")), port=REST_PORT,
                             taskmanagers=2, slots=2, worker_pool_port=POOL_PORT)
    local.start()
    yield local
    local.stop()
    assert local.overview() is None, "flink stop left the cluster running"


def flags(cluster, *extra):
    return ["--preset", "flink", "--flink_master", cluster.master,
            "--environment_config", cluster.worker_pool, "--checkpointing_interval", "2000",
            *extra]


def _job(cluster, state=None):
    jobs = [j for j in flink.jobs(cluster.master) if state is None or j["state"] == state]
    return jobs[0] if jobs else None


def test_flink_start_gives_a_job_manager_two_task_managers_and_a_worker_pool(cluster):
    overview = cluster.overview()
    assert overview["taskmanagers"] == 2 and overview["slots-total"] == 4
    assert len(cluster.taskmanager_pids()) == 2 and cluster.worker_pool_pid()
    assert "2 task managers" in cluster.status()
    assert cluster.start() == f"http://{cluster.master}"  # started again: nothing new


def test_bounded_run_on_the_cluster_stores_each_valid_event_once(kafka, tmp_path, cluster):
    """The Java reader's job streams and the launcher ends it once the committed offsets
    reach the bound (KafkaIO's own bound could wait for ever on uneven partitions)."""
    output = run_end_to_end(kafka, tmp_path, flags(cluster, "--environment_type", "LOOPBACK"),
                            bounded=True)
    assert "the bound is reached (--max_num_records" in output
    assert _job(cluster, "CANCELED") is not None and _job(cluster, "RUNNING") is None


def test_a_task_manager_killed_mid_stream_loses_and_doubles_nothing(kafka, tmp_path,
                                                                     cluster):
    """SIGKILL one task manager while events stream in, start a new one: Flink restarts
    the job from its last completed checkpoint (Kafka offsets in it), the events after it
    are read and written again (same point ids: overwritten, not doubled), and the run
    ends with every valid event stored once and every offset committed."""
    failures = []

    def kill_a_task_manager(pipeline, offsets, rest):
        producer = threading.Thread(target=produce, args=(offsets.bootstrap, offsets.topic,
                                                          rest), kwargs={"rate": 100})
        producer.start()
        time.sleep(2)
        victim = cluster.taskmanager_pids()[0]
        os.kill(victim, signal.SIGKILL)
        job = _job(cluster, "RUNNING") or _job(cluster)
        # Flink notices the lost task manager and restarts the job's tasks from the last
        # completed checkpoint on the slots left.
        assert _wait_for(lambda: _failures(cluster, job["id"]), 120), \
            "the job never noticed the task manager it lost"
        cluster.start_taskmanager()
        producer.join()
        failures.extend(_failures(cluster, job["id"]))

    run_end_to_end(kafka, tmp_path, flags(cluster, "--environment_type", "LOOPBACK"),
                   bounded=False, count=1200, on_running=kill_a_task_manager)
    # Flink names the loss as whichever side notices first: the heartbeat ("no longer
    # reachable") or a shuffle's connection to it ("the remote task manager was lost").
    assert any("no longer reachable" in f or "remote task manager was lost" in f
               for f in failures), failures
    assert _wait_for(lambda: cluster.overview()["taskmanagers"] == 2, 60)
    assert _job(cluster, "CANCELED") is not None, "Ctrl-C cancelled the job on the cluster"


@pytest.mark.server
def test_python_workers_in_their_own_processes_write_to_a_qdrant_server(kafka, tmp_path,
                                                                        cluster, qdrant_url):
    """The `flink` preset as shipped: the Python code in the worker pool's processes (one
    per SDK worker, two task managers), writing to a Qdrant server at once."""
    run_end_to_end(kafka, tmp_path, flags(cluster, "--sdk_worker_parallelism", "2"),
                   bounded=True, qdrant_url=qdrant_url)


def _failures(cluster, job_id):
    """The root causes of the job's restarts, as Flink's REST API lists them."""
    with urllib.request.urlopen(f"http://{cluster.master}/jobs/{job_id}/exceptions",
                                timeout=10) as response:
        history = json.load(response).get("exceptionHistory") or {}
    return [entry.get("exceptionName", "") + ": " + entry.get("stacktrace", "")[:300]
            for entry in history.get("entries", [])]


def _wait_for(condition, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(1)
    return False
