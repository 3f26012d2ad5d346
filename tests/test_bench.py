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
