"""`vectorstream bench` end to end on a small workload: both pipelines run, store every
event, and the report, chart and table come out. A benchmark's numbers are not asserted
here (a test never asserts a speed); only that they are there."""
import json
import subprocess
import sys

from vectorstream.bench.workloads import workload_messages


def test_workloads_unique_and_catalog():
    unique = [json.loads(v)["product"]["name"] for _, v in workload_messages("unique", 300)]
    assert len(set(unique)) == 300
    catalog = [json.loads(v)["product"]["id"] for _, v in workload_messages("catalog", 3000)]
    popular = max(catalog.count(p) for p in set(catalog))
    assert len(set(catalog)) < 3000 and popular > 30  # Zipf-like: a head that repeats


def test_bench_runs_ours_and_stock_and_reports(tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "vectorstream", "bench", "--workload", "catalog",
         "--events", "120", "--stock_events", "60", "--source", "memory", "--device", "cpu",
         "--store_alone", "--report", str(report)],
        capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["ours"]["stored"] == 120 and data["stock"]["stored"] == 60
    for side in ("ours", "stock"):
        for key in ("events_per_s", "latency_p50_s", "latency_p99_s", "peak_rss_mb",
                    "us_per_event"):
            assert data[side][key] is not None and data[side][key] > 0
    assert data["speedup"] > 0 and "memory" in data["source"]
    # The store alone, beside ours, to tell the pipeline's memory from the store's.
    assert data["store_alone"]["points"][0] == 0 and len(data["store_alone"]["rss_mb"]) >= 1
    assert all(anon <= total for total, anon in zip(data["store_alone"]["rss_mb"],
                                                    data["store_alone"]["rss_anon_mb"]))
    # Ours' CPU per event with the store's share of it (from the store-alone run).
    assert data["store_alone"]["us_per_point"] > 0
    assert 0 < data["store_share"]["store_share"] < 1 and "less the store's" in proc.stdout
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert "ours / stock events/s" in proc.stdout


def test_bench_workers_write_each_event_once_to_a_server(tmp_path):
    """`--workers 2`: the DirectRunner's multi-processing mode, two worker processes
    writing to one Qdrant server; every event is stored once (the count read back from
    the server equals the events, and the collection is a fresh one)."""
    import os
    import pytest
    url = os.environ.get("VECTORSTREAM_QDRANT_URL")
    if not url:
        pytest.skip("set VECTORSTREAM_QDRANT_URL to a Qdrant server to run this")
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "vectorstream", "bench", "--workload", "catalog",
         "--events", "3000", "--skip_stock", "--source", "memory", "--device", "cpu",
         "--workers", "2", "--qdrant_url", url, "--report", str(report)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["ours"]["workers"] == 2
    assert data["ours"]["stored"] == 3000 and data["ours"]["stored_reported"] == 3000


def test_bench_workers_from_kafka_are_refused_in_one_line():
    """Several DirectRunner worker processes reading Kafka lost events (32,536 of 200,000
    stored, the run ending as if done): the bench refuses that set-up, saying what to use."""
    proc = subprocess.run(
        [sys.executable, "-m", "vectorstream", "bench", "--workload", "catalog",
         "--events", "100", "--skip_stock", "--source", "kafka", "--workers", "2",
         "--qdrant_url", "http://127.0.0.1:1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--source memory" in proc.stderr + proc.stdout
