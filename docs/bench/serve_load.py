"""`vectorstream serve` under load while a pipeline writes, measured with a real load tool.

    GOBIN=$PWD/.tools go install github.com/rakyll/hey@v0.1.5
    python docs/bench/serve_load.py --hey .tools/hey [--qdrant_url URL | --qdrant_path DIR]

Produces `--events` catalog events for 200 users to a fresh topic and starts a streaming
run into the store (`vectorstream run`, the default model); once the first lot is stored,
starts `vectorstream serve` on it and, while the run goes on storing a steady trickle of
new events, runs `hey` at 1 and 32 concurrent clients against each endpoint for
`--seconds` each: personalised search, search, recommend for a user, for a product.
Reports requests/s and p50 / p99 latency (hey's own figures) per endpoint and concurrency.
"""
import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from vectorstream.io.kafka_admin import ensure_topic, group_offsets  # noqa: E402
from vectorstream.io.produce import generate, produce  # noqa: E402


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hey(binary, url, clients, seconds):
    out = subprocess.run([binary, "-z", f"{seconds}s", "-c", str(clients), url],
                         capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", out).group(1))
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", out).group(1))
    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    return {"requests_per_s": round(rate, 1), "p50_ms": round(p50 * 1000, 1),
            "p99_ms": round(p99 * 1000, 1), "status": codes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hey", required=True)
    parser.add_argument("--qdrant_url", default=None)
    parser.add_argument("--qdrant_path", default=None)
    parser.add_argument("--bootstrap_servers", default="127.0.0.1:9092")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--report", default=None)
    args = parser.parse_args()
    store = (["--qdrant_url", args.qdrant_url] if args.qdrant_url else
             ["--qdrant_path", args.qdrant_path or tempfile.mkdtemp(prefix="serve-")])
    collection = f"serve{uuid.uuid4().hex[:6]}"
    topic = f"serve-load-{uuid.uuid4().hex[:6]}"
    ensure_topic(args.bootstrap_servers, topic, partitions=2)
    rng = random.Random(5)
    messages = []
    for key, value, event in generate(args.events, products=500, seed=31):
        event["user_id"] = f"user{rng.randint(1, 200)}"
        messages.append((key, json.dumps(event).encode(), event))
    produce(args.bootstrap_servers, topic, messages)
    run = subprocess.Popen([sys.executable, "-m", "vectorstream", "run",
                            "--bootstrap_servers", args.bootstrap_servers, "--topic", topic,
                            "--consumer_group", f"g-{topic}", *store, "--collection",
                            collection, "--window_seconds", "2", "--progress_seconds", "0",
                            "--dead_letter_path", os.devnull],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while sum(max(0, o) for o in group_offsets(args.bootstrap_servers, topic,
                                               f"g-{topic}").values()) < len(messages):
        assert run.poll() is None, "the run ended"
        time.sleep(1)
    time.sleep(5)  # the last window's products and profiles
    stop = threading.Event()

    def trickle():  # the pipeline goes on writing while the API is under load
        more = [(k, v) for k, v, _ in generate(100_000, products=500, seed=32)]
        for i in range(0, len(more), 20):
            if stop.is_set():
                return
            produce(args.bootstrap_servers, topic, more[i:i + 20])
            time.sleep(1)
    threading.Thread(target=trickle, daemon=True).start()
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "vectorstream", "serve", "--port",
                              str(port), *store, "--collection", collection],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    user = messages[0][2]["user_id"]
    product = messages[0][2]["product"]["id"]
    endpoints = {
        "search": f"{base}/search?q=wireless%20headphones&limit=10",
        "personalised search": f"{base}/search?q=kitap&user={user}&limit=10",
        "recommend for a user": f"{base}/recommend/user/{user}?limit=10",
        "recommend like a product": f"{base}/recommend/product/{product}?limit=10",
    }
    results = {}
    try:
        for name, url in endpoints.items():
            for clients in (1, 32):
                results[f"{name}, {clients} client(s)"] = hey(args.hey, url, clients,
                                                              args.seconds)
                print(name, clients, results[f"{name}, {clients} client(s)"], flush=True)
    finally:
        stop.set()
        serve.terminate()
        run.terminate()
        serve.wait(30)
        run.wait(60)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": f"{os.cpu_count()} cores", "store": store[1],
              "events": args.events, "seconds_each": args.seconds, "results": results}
    if args.report:
        with open(args.report, "w") as fh:
            json.dump(report, fh, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
