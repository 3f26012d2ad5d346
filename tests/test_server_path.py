"""The production path, proven against a real Qdrant server (every test here is marked
`server`: `make test-server`).

- Parallel Python workers on Flink writing into the server: the mini-cluster with two SDK
  worker processes, and the separate cluster with its worker pool, a 4-partition topic,
  both readers, streaming: each valid event stored once, each malformed one
  dead-lettered, and Kafka's own `kafka-consumer-groups --describe` showing every
  partition committed to its end (lag 0).
- Server faults during a streaming run, on a server these tests start themselves (the
  binary VECTORSTREAM_QDRANT_BIN names) so they can kill it: SIGKILLed and started again
  on the same storage within `--write_retry_seconds` (the run goes on by itself, /healthz
  503 while it is down and 200 after, retries counted); down for longer than that (the
  bundle fails, nothing of it committed, the run restarted stores what was missed); and a
  Flink TaskManager SIGKILLed while two Python workers write to the server. Each: nothing
  lost, nothing doubled.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import GroupOffsets, PipelineProcess, run_end_to_end, stored_event_ids
from test_runners import _built

pytestmark = pytest.mark.server


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return None, str(exc)


def wait_until(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s")


class QdrantServer:
    """A Qdrant server of this test's own, on free loopback ports and its own storage, to
    kill and start again."""

    def __init__(self, binary, storage):
        self.binary, self.storage = binary, storage
        self.http, self.grpc = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.proc = None
        self.env = {}  # more of the server's settings (QDRANT__…)

    def start(self):
        env = {**os.environ, "QDRANT__SERVICE__HOST": "127.0.0.1",
               "QDRANT__SERVICE__HTTP_PORT": str(self.http),
               "QDRANT__SERVICE__GRPC_PORT": str(self.grpc),
               "QDRANT__STORAGE__STORAGE_PATH": str(self.storage),
               "QDRANT__TELEMETRY_DISABLED": "true", **self.env}
        self.log = open(f"{self.storage}.log", "ab")
        self.proc = subprocess.Popen([self.binary], env=env, cwd=os.path.dirname(self.storage),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: get(self.url + "/readyz")[0] == 200, 60, "Qdrant ready")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def flags(self):
        return ["--qdrant_url", self.url, "--qdrant_grpc_port", str(self.grpc)]


@pytest.fixture
def own_server(tmp_path):
    binary = os.environ.get("VECTORSTREAM_QDRANT_BIN")
    if not binary:
        pytest.skip("the fault tests start and kill a Qdrant server of their own: set "
                    "VECTORSTREAM_QDRANT_BIN to the server binary (make test-server)")
    server = QdrantServer(binary, tmp_path / "qdrant-storage")
    server.start()
    yield server
    if server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait(30)


def assert_lag_zero(kafka, group, topic, count):
    """Kafka's own kafka-consumer-groups --describe: every partition with records
    committed to its end."""
    from vectorstream.io.local_kafka import describe_group
    rows = [r for r in describe_group(kafka, group) if r["topic"] == topic]
    assert rows and all(r["lag"] == 0 for r in rows), rows
    assert sum(r["current_offset"] for r in rows) == count, rows


# -- parallel Python workers on Flink, into the server

@pytest.mark.parametrize("reader", ["java", "python"])
def test_mini_cluster_two_python_workers_store_each_event_once(kafka, tmp_path, qdrant_url,
                                                               reader):
    from vectorstream.runners import java
    _built(java.flink_job_server_jar)
    if reader == "java":
        _built(java.kafka_expansion_service_jar)
    seen = {}
    output = run_end_to_end(kafka, tmp_path, [
        "--preset", "flink-local", "--kafka_reader", reader, "--sdk_worker_parallelism", "2",
        "--checkpointing_interval", "2000"], bounded=False, count=1000, qdrant_url=qdrant_url,
        on_done=lambda topic, group, n: seen.update(topic=topic, group=group, n=n))
    assert "Python SDK worker pool at" in output
    assert_lag_zero(kafka, seen["group"], seen["topic"], seen["n"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from test_flink_cluster import POOL_PORT, REST_PORT
    from vectorstream.runners import flink
    local = flink.LocalFlink(str(tmp_path_factory.mktemp("flink")), port=REST_PORT + 10,
                             taskmanagers=2, slots=2, worker_pool_port=POOL_PORT + 10)
    local.start()
    yield local
    local.stop()


def cluster_flags(cluster, *extra):
    return ["--preset", "flink", "--flink_master", cluster.master,
            "--environment_config", cluster.worker_pool, "--checkpointing_interval", "2000",
            "--sdk_worker_parallelism", "2", *extra]


@pytest.mark.parametrize("reader", ["java", "python"])
def test_separate_cluster_worker_pool_stores_each_event_once(kafka, tmp_path, qdrant_url,
                                                             cluster, reader):
    seen = {}
    run_end_to_end(kafka, tmp_path, cluster_flags(cluster, "--kafka_reader", reader),
                   bounded=False, count=1000, qdrant_url=qdrant_url,
                   on_done=lambda topic, group, n: seen.update(topic=topic, group=group, n=n))
    assert_lag_zero(kafka, seen["group"], seen["topic"], seen["n"])


def test_a_task_manager_killed_while_two_python_workers_write_to_the_server(
        kafka, tmp_path, qdrant_url, cluster):
    from test_flink_cluster import _failures, _job, _wait_for
    failures = []

    def kill_a_task_manager(pipeline, offsets, rest):
        from vectorstream.io.produce import produce
        producer = threading.Thread(target=produce, args=(offsets.bootstrap, offsets.topic,
                                                          rest), kwargs={"rate": 100})
        producer.start()
        time.sleep(2)
        os.kill(cluster.taskmanager_pids()[0], signal.SIGKILL)
        job = _job(cluster, "RUNNING") or _job(cluster)
        assert _wait_for(lambda: _failures(cluster, job["id"]), 120), \
            "the job never noticed the task manager it lost"
        cluster.start_taskmanager()
        producer.join()
        failures.extend(_failures(cluster, job["id"]))

    run_end_to_end(kafka, tmp_path, cluster_flags(cluster), bounded=False, count=1200,
                   qdrant_url=qdrant_url, on_running=kill_a_task_manager)
    # (Flink names the loss as whichever side notices first: tests/test_flink_cluster.py)
    assert any("no longer reachable" in f or "remote task manager was lost" in f
               for f in failures), failures
    assert _wait_for(lambda: cluster.overview()["taskmanagers"] == 2, 60)


# -- the server killed under a streaming run

def _streaming_run(kafka, tmp_path, server, retry_seconds, group, topic):
    port = free_port()
    return port, PipelineProcess(
        "--bootstrap_servers", kafka, "--topic", topic, "--consumer_group", group,
        *server.flags(), "--collection", topic, "--write_retry_seconds", str(retry_seconds),
        "--dead_letter_path", str(tmp_path / "dead.jsonl"), "--progress_seconds", "0",
        "--window_seconds", "2", "--metrics_port", str(port))


def _scrape(port, name):
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, body
    values = [float(line.split()[-1]) for line in body.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "{")]
    return sum(values)


def _setup(kafka, n=600):
    from vectorstream.io.kafka_admin import ensure_topic
    from vectorstream.io.produce import generate
    topic = f"fault-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=2)
    messages = list(generate(n, products=60, seed=13, bad_fraction=0.05))
    valid = sorted(m[2]["event_id"] for m in messages if m[2] is not None)
    return topic, f"g-{topic}", messages, valid


def test_server_killed_and_back_within_the_retry_budget_the_run_goes_on(kafka, tmp_path,
                                                                         own_server):
    from vectorstream.io.produce import produce
    topic, group, messages, valid = _setup(kafka)
    produce(kafka, topic, messages[:200])
    offsets = GroupOffsets(kafka, topic, group)
    port, pipeline = _streaming_run(kafka, tmp_path, own_server, 120, group, topic)
    try:
        offsets.wait_for(200, timeout=300, pipeline=pipeline)
        wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 60, "healthy")
        own_server.kill()
        produce(kafka, topic, messages[200:400])  # arrives while the server is down
        wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 503, 60,
                   "/healthz 503 while the server is down")
        assert "Qdrant" in get(f"http://127.0.0.1:{port}/healthz")[1]
        wait_until(lambda: _scrape(port, "vectorstream_write_retries_total") > 0, 60,
                   "writes retried")
        time.sleep(5)
        own_server.start()  # same storage, same ports
        wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 120,
                   "/healthz 200 once the server is back")
        produce(kafka, topic, messages[400:])
        offsets.wait_for(len(messages), timeout=300, pipeline=pipeline)
        assert pipeline.alive(), "the run went on by itself"
        assert _scrape(port, "vectorstream_write_retries_total") > 0
    finally:
        pipeline.stop(timeout=60)
        offsets.close()
    ids = stored_event_ids(url=own_server.url, collection=topic, grpc_port=own_server.grpc)
    assert sorted(ids) == valid, "nothing lost, nothing doubled"


def test_server_down_past_the_retry_budget_fails_the_bundle_and_a_restart_stores_it(
        kafka, tmp_path, own_server):
    from vectorstream.io.produce import produce
    topic, group, messages, valid = _setup(kafka)
    produce(kafka, topic, messages[:200])
    offsets = GroupOffsets(kafka, topic, group)
    _, pipeline = _streaming_run(kafka, tmp_path, own_server, 5, group, topic)
    try:
        offsets.wait_for(200, timeout=300, pipeline=pipeline)
        committed = offsets.total()
        own_server.kill()
        produce(kafka, topic, messages[200:])
        wait_until(lambda: not pipeline.alive(), 180, "the run failed once its writes "
                                                      "kept failing past the budget")
        assert pipeline.proc.returncode not in (0, None)
        assert "kept failing" in pipeline.output() and "--write_retry_seconds" in \
            pipeline.output()
        assert offsets.total() == committed, "nothing of the failed bundle was committed"
    finally:
        pipeline.stop(timeout=30)
    own_server.start()
    _, again = _streaming_run(kafka, tmp_path, own_server, 120, group, topic)
    try:
        offsets.wait_for(len(messages), timeout=300, pipeline=again)
    finally:
        again.stop(timeout=60)
        offsets.close()
    ids = stored_event_ids(url=own_server.url, collection=topic, grpc_port=own_server.grpc)
    assert sorted(ids) == valid, "nothing lost, nothing doubled"
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert all(d["stage"] == "parse" for d in dead)
    assert len({(d["source"]["partition"], d["source"]["offset"]) for d in dead}) == \
        len(messages) - len(valid), "each malformed message dead-lettered"


def test_a_key_the_server_refuses_is_one_line_for_the_commands_that_read(tmp_path):
    """A server that asks for an API key: `search` (over REST) and `stats` (qdrant-client)
    with a wrong key each say so in one line, not a traceback."""
    binary = os.environ.get("VECTORSTREAM_QDRANT_BIN")
    if not binary:
        pytest.skip("needs VECTORSTREAM_QDRANT_BIN (make test-server)")
    server = QdrantServer(binary, tmp_path / "qdrant-storage")
    server.env = {"QDRANT__SERVICE__API_KEY": "right-key-123"}
    server.start()
    try:
        for command in (["search", "kulaklık"], ["stats"]):
            proc = subprocess.run(
                [sys.executable, "-m", "vectorstream", *command, *server.flags()],
                capture_output=True, text=True, timeout=120,
                env={**os.environ, "QDRANT_API_KEY": "wrong-key"})
            # (qdrant-client may warn first that a key travels over plain HTTP: its own)
            last = proc.stderr.strip().splitlines()[-1]
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
            assert last.startswith("vectorstream: error: Qdrant server at ") and \
                "refused the request" in last and "check QDRANT_API_KEY" in last, proc.stderr
    finally:
        server.proc.terminate()
        server.proc.wait(30)



# -- a backfill's deferred indexing, and a backfill killed before it could turn it back on

def test_a_backfill_killed_mid_way_leaves_its_index_to_the_next_run(kafka, tmp_path,
                                                                    qdrant_url):
    """A bounded run into a server turns the collection's indexing off while it writes
    (--defer_indexing, on by default) and back on as it ends. SIGKILLed, it cannot: the
    next bounded run keeps the threshold the first one kept and turns it back on at its
    end; a streaming run turns it back on at its start, saying so in one line. Each valid
    event stored once."""
    from vectorstream.io.produce import produce
    from vectorstream.io.qdrant import open_store
    from vectorstream.io.server import DEFERRED_KEY
    from vectorstream.io.versions import resolve
    topic, group, messages, valid = _setup(kafka, n=2000)
    produce(kafka, topic, messages)
    store = open_store(url=qdrant_url)
    flags = ["--bootstrap_servers", kafka, "--topic", topic, "--consumer_group", group,
             "--qdrant_url", qdrant_url, "--collection", topic, "--dead_letter_path",
             str(tmp_path / "dead.jsonl"), "--progress_seconds", "0", "--products", "off",
             "--profiles", "off"]

    def state():
        if not store.exists(topic):
            return None
        config = store.client.get_collection(resolve(store, topic)).config
        return config.optimizer_config.indexing_threshold, (config.metadata or {}).get(
            DEFERRED_KEY)
    try:
        backfill = PipelineProcess(*flags, "--ending_offsets", "latest")
        try:
            wait_until(lambda: state() == (0, 10_000), 120, "indexing deferred")
            assert backfill.alive(), backfill.output()
        finally:
            backfill.kill()
        assert state() == (0, 10_000), "a killed run leaves indexing off"

        again = subprocess.run([sys.executable, "-m", "vectorstream", "run", *flags,
                                "--ending_offsets", "latest"], capture_output=True, text=True,
                               timeout=300)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        assert state() == (10_000, None), "the backfill that ended turned it back on"
        ids = [h.payload["event_id"] for h in store.scroll(topic)]
        assert sorted(ids) == valid, "nothing lost, nothing doubled"

        store.defer_indexing(resolve(store, topic))  # as a killed backfill leaves it
        streaming = PipelineProcess(*flags)
        try:
            wait_until(lambda: state() == (10_000, None), 120, "indexing turned back on")
            wait_until(lambda: "indexing was off, left so by a backfill that did not finish: "
                               "turned back on" in streaming.output(), 30, "said so")
        finally:
            streaming.stop(timeout=60)
    finally:
        for c in store.client.get_collections().collections:
            if c.name.startswith(topic):  # its version (the alias goes with it)
                store.client.delete_collection(c.name)
        store.close()
