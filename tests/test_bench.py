"""`vectorstream bench` end to end on a small workload: both pipelines run, store every
event, and the report, chart and table come out. A benchmark's numbers are not asserted
here (a test never asserts a speed); only that they are there."""
import json
import subprocess
import sys

import pytest

from conftest import SERVER_URL

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


@pytest.mark.server
def test_bench_against_the_hand_written_consumer(kafka, tmp_path):
    """`--baseline plain`: ours and the hand-written consumer, each a command timed start
    to exit into the Qdrant server, both store every event; the report has each measure
    and ours' start-up timeline (no speed asserted)."""
    report = tmp_path / "plain.json"
    proc = subprocess.run(
        [sys.executable, "-m", "vectorstream", "bench", "--workload", "catalog",
         "--events", "600", "--products", "50", "--partitions", "2", "--baseline", "plain",
         "--bootstrap_servers", kafka, "--qdrant_url", SERVER_URL, "--device", "cpu",
         "--report", str(report)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["stored_all"] and data["speedup"] > 0
    for side in ("ours", "plain"):
        row = data[side]
        assert row["rc"] == 0 and row["stored"] == 600
        for key in ("wall_s", "startup_s", "us_per_event", "events_per_s_wall"):
            assert row[key] is not None and row[key] > 0, (side, key, row)
    assert "first record polled" in data["ours"]["timeline"]
    assert "ours ÷ plain" in proc.stdout


def test_the_request_building_bench_runs_and_its_three_ways_agree():
    """`python -m vectorstream.bench.wire` (levers 16, 33 and 34): the three ways of
    building an upsert request make the same request (it checks so itself), and it reports
    each; the numbers are not asserted."""
    proc = subprocess.run([sys.executable, "-m", "vectorstream.bench.wire", "--points", "20",
                           "--repeats", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert set(found) == {"classes", "vector_bytes", "wire"}
    assert all(v["median_us_per_point"] > 0 for v in found.values())
