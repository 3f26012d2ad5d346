"""`vectorstream serve` driven by a real HTTP client (httpx) against what a real run
stored, while a streaming run goes on writing the embedded store (the API reads a copy,
taken again every --refresh_seconds): answers, JSON errors a client can act on, the
OpenAPI page."""
import shutil
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from conftest import SERVER_URL, GroupOffsets, PipelineProcess
from vectorstream.io.kafka_admin import ensure_topic
from vectorstream.io.produce import generate, produce


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(params=["edge", pytest.param("server", marks=pytest.mark.server)])
def stream(request, kafka, tmp_path):
    """A streaming run that has stored a first lot of events (and keeps the store): into
    the embedded store, or a fresh collection on the Qdrant server VECTORSTREAM_QDRANT_URL
    names."""
    topic = f"serve-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=1)
    messages = list(generate(150, products=30, seed=81))
    produce(kafka, topic, messages)
    group = f"g-{topic}"
    offsets = GroupOffsets(kafka, topic, group, partitions=(0,))
    path = str(tmp_path / "q")
    if request.param == "server":
        store = ["--qdrant_url", SERVER_URL, "--collection", topic]
    else:
        store = ["--qdrant_path", path]
    pipeline = PipelineProcess("--bootstrap_servers", kafka, "--topic", topic,
                               "--consumer_group", group, *store,
                               "--window_seconds", "2", "--progress_seconds", "0",
                               "--dead_letter_path", str(tmp_path / "dead.jsonl"))
    offsets.wait_for(len(messages), timeout=300, pipeline=pipeline)
    time.sleep(6)  # the window's products and profiles
    yield {"path": path, "topic": topic, "messages": messages, "pipeline": pipeline,
           "offsets": offsets, "store": store, "kind": request.param,
           "collection": topic if request.param == "server" else "ecommerce_events"}
    pipeline.stop(timeout=60)
    offsets.close()


def test_serve_answers_while_a_run_writes(kafka, stream, tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "vectorstream", "serve", "--port",
                               str(port), *stream["store"],
                               "--refresh_seconds", "2"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.time() < deadline, server.stdout.read()
            time.sleep(0.5)
        events = [m[2] for m in stream["messages"]]
        user = events[0]["user_id"]
        product = events[0]["product"]["id"]
        with httpx.Client(base_url=base, timeout=30) as client:
            found = client.get("/search", params={"q": "kablosuz kulaklık", "limit": 3}).json()
            assert len(found["recommendations"]) == 3
            personal = client.get("/search", params={"q": "kitap", "user": user}).json()
            assert personal["from"]["user_id"] == user and personal["recommendations"]
            for_user = client.get(f"/recommend/user/{user}").json()
            assert for_user["recommendations"] and for_user["from"]["events"] >= 1
            like = client.get(f"/recommend/product/{product}", params={"limit": 4}).json()
            assert like["from"]["product"]["id"] == product
            assert product not in [r["product"]["id"] for r in like["recommendations"]]
            missing = client.get("/recommend/user/nobody-at-all")
            assert missing.status_code == 404 and missing.json() == {
                "error": "not_found",
                "reason": f"no profile of user 'nobody-at-all' in {stream['collection']}_users"}
            assert client.get("/recommend/product/none").status_code == 404
            bad = client.get("/search", params={"q": "x", "limit": 0})
            assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "limit"]
            long = client.get("/search", params={"q": "ü" * 501})
            assert long.status_code == 422 and long.json()["detail"][0]["loc"] == ["query", "q"]
            assert client.get("/openapi.json").json()["info"]["title"] == "VectorStream"
            assert "swagger" in client.get("/docs").text.lower()
            # what the run writes now shows up once the copy is taken again
            before = client.get("/healthz").json()["products"]
            fresh = [m for m in generate(40, products=200, seed=82)]
            produce(kafka, stream["topic"], fresh)
            stream["offsets"].wait_for(len(stream["messages"]) + 40, timeout=120,
                                       pipeline=stream["pipeline"])
            deadline = time.time() + 60
            while client.get("/healthz").json()["products"] <= before:
                assert time.time() < deadline, "the new products never showed"
                time.sleep(1)
            if stream["kind"] == "edge":  # (a server going away: tests/test_server_path.py)
                # the store gone: 503, with the reason
                stream["pipeline"].stop(timeout=60)
                shutil.rmtree(stream["path"])
                time.sleep(2.5)
                gone = client.get(f"/recommend/user/{user}")
                assert gone.status_code == 503 and gone.json()["error"] == "store_unavailable"
                assert client.get("/healthz").status_code == 503
    finally:
        server.terminate()
        server.wait(30)
    assert "Traceback" not in (server.stdout.read() or ""), "no stack trace reached a client"
