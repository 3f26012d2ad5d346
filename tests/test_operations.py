"""Operating it: the Prometheus endpoint and /healthz of a real run (`vectorstream run
--metrics_port`), a real Prometheus server (Debian's `prometheus`, installed by `make
test`) scraping it, and every query of the Grafana dashboard in deploy/ run against that
Prometheus. The broker is stopped and started again under the run: /healthz says 503 with
the reason, then 200."""
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from conftest import GroupOffsets, PipelineProcess
from vectorstream.io.produce import generate, produce

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "dashboards", "vectorstream.json")

# name in /metrics → must it move (grow) during a healthy run with malformed messages?
METRICS = {
    "vectorstream_events_read_total": True,
    "vectorstream_events_valid_total": True,
    "vectorstream_events_invalid_total": True,
    "vectorstream_points_written_total": True,
    'vectorstream_dead_letters_total{stage="parse"}': True,
    'vectorstream_dead_letters_total{stage="embed"}': False,  # moves when the model fails
    'vectorstream_dead_letters_total{stage="write"}': False,  # ... when Qdrant refuses
    "vectorstream_write_retries_total": False,  # ... when Qdrant fails (test_sink injects it)
    "vectorstream_embed_batch_seconds_count": True,
    "vectorstream_event_to_stored_seconds_count": True,
    "vectorstream_embedding_cache_hits_total": True,
    "vectorstream_embedding_cache_misses_total": True,
    "vectorstream_kafka_consumer_lag": False,  # a gauge: present for each partition
    "vectorstream_up": False,
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    """(status, body); status None while nothing listens there yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError) as exc:
        return None, str(exc)


def scrape(port):
    """{sample name with labels: value} from /metrics."""
    status, text = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def value(samples, name):
    if name in samples:
        return samples[name]
    found = [v for k, v in samples.items() if k.startswith(name + "{")]
    return sum(found) if found else None


def wait_until(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s")


@pytest.fixture
def prometheus(tmp_path):
    """A Prometheus server of its own (Debian's package), scraping a port set later."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Prometheus is not installed: `make test` installs Debian's package "
                    "(apt-get install prometheus)")
    port, target = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n"
                      f"scrape_configs:\n  - job_name: vectorstream\n"
                      f"    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n")
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen([binary, f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: get(f"http://127.0.0.1:{port}/-/ready")[0] == 200 if
               proc.poll() is None else True, 60, "Prometheus ready")
    assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
    yield {"url": f"http://127.0.0.1:{port}", "target": target}
    proc.terminate()
    proc.wait(30)
    log.close()


def query(prometheus, expr):
    status, body = get(f"{prometheus['url']}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expr}))
    assert status == 200, body
    return json.loads(body)["data"]["result"]


def test_metrics_health_and_every_dashboard_query_on_a_real_run(kafka_broker, kafka, topic,
                                                                tmp_path, prometheus):
    if kafka_broker is None:
        pytest.skip("the broker was not started by these tests, so they cannot stop it")
    port = prometheus["target"]
    group = f"ops-{uuid.uuid4().hex[:6]}"
    offsets = GroupOffsets(kafka, topic, group)
    messages = list(generate(600, products=30, bad_fraction=0.1, seed=41))
    pipeline = PipelineProcess("--bootstrap_servers", kafka, "--topic", topic,
                               "--consumer_group", group, "--window_seconds", "2",
                               "--qdrant_path", str(tmp_path / "q"), "--metrics_port",
                               str(port), "--dead_letter_path", str(tmp_path / "dead.jsonl"))
    try:
        produce(kafka, topic, messages[:20])
        offsets.wait_for(20, timeout=180, pipeline=pipeline)
        first = scrape(port)
        for name in METRICS:
            assert value(first, name) is not None, f"{name} is not in /metrics"
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        produce(kafka, topic, messages[20:], rate=40)  # ~15 s of traffic
        offsets.wait_for(len(messages), timeout=180, pipeline=pipeline)
        time.sleep(3)  # two more scrapes by Prometheus after the last event
        last = scrape(port)
        for name, moves in METRICS.items():
            if moves:
                assert value(last, name) > value(first, name), f"{name} did not move"
        lags = {k: v for k, v in last.items() if k.startswith("vectorstream_kafka_consumer_lag")}
        assert len(lags) == 2 and all(v >= 0 for v in lags.values()), lags
        assert last["vectorstream_up"] == 1
        # Every panel's query of the dashboard returns data from the real Prometheus.
        with open(DASHBOARD) as fh:
            panels = json.load(fh)["panels"]
        for panel in panels:
            for target in panel["targets"]:
                assert query(prometheus, target["expr"]), \
                    f"panel {panel['title']!r}: no data for {target['expr']}"
        # Kafka goes away: 503 with the reason; it comes back: 200.
        kafka_broker.stop()
        wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 503, 30,
                   "/healthz 503 with the broker stopped")
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert "Kafka" in json.loads(body)["reason"], body
        kafka_broker.start()
        wait_until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 60,
                   "/healthz 200 with the broker back")
        assert pipeline.alive()
    finally:
        pipeline.stop()
        offsets.close()


def test_metrics_port_refusals_are_one_line(kafka, topic, tmp_path):
    import sys
    busy = socket.socket()
    busy.bind(("0.0.0.0", 0))
    busy.listen()
    try:
        proc = subprocess.run([sys.executable, "-m", "vectorstream", "run",
                               "--bootstrap_servers", kafka, "--topic", topic,
                               "--qdrant_path", str(tmp_path / "q"), "--metrics_port",
                               str(busy.getsockname()[1]), "--max_num_records", "1"],
                              capture_output=True, text=True, timeout=300)
    finally:
        busy.close()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot be served" in proc.stderr and "Traceback" not in proc.stderr
