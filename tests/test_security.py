"""Authenticated Kafka: the test broker has a SASL_PLAINTEXT (PLAIN) listener. The password
reaches the pipeline through the environment only, and never shows in its output."""
import os
import subprocess
import sys
import uuid

from conftest import KAFKA_SASL_PORT, SASL_PASSWORD, SASL_USER
from vectorstream.io.produce import generate, produce
from vectorstream.io.qdrant import open_store

SASL = ["--kafka_config", "security.protocol=SASL_PLAINTEXT",
        "--kafka_config", "sasl.mechanism=PLAIN",
        "--kafka_config", f"sasl.username={SASL_USER}",
        "--kafka_config", "sasl.password=env:VS_TEST_KAFKA_PASSWORD"]


def run_pipeline(args, password):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VS_TEST_KAFKA_PASSWORD": password}
    return subprocess.run([sys.executable, "-m", "vectorstream", "-v", "run", *args],
                          env=env, capture_output=True, text=True, timeout=300)


def test_pipeline_reads_through_sasl_with_the_password_from_the_environment(
        kafka_broker, kafka, topic, tmp_path):
    if kafka_broker is None:
        import pytest
        pytest.skip("the broker was not started by these tests (no SASL listener)")
    messages = list(generate(20, seed=3))
    produce(kafka, topic, messages)
    path = str(tmp_path / "q")
    proc = run_pipeline(["--bootstrap_servers", f"127.0.0.1:{KAFKA_SASL_PORT}", "--topic", topic,
                         "--consumer_group", f"sasl-{uuid.uuid4().hex[:6]}",
                         "--max_num_records", "20", "--qdrant_path", path, *SASL],
                        SASL_PASSWORD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SASL_PASSWORD not in proc.stdout + proc.stderr
    store = open_store(path=path)
    try:
        assert store.count("ecommerce_events") == 20
    finally:
        store.close()

    wrong = run_pipeline(["--bootstrap_servers", f"127.0.0.1:{KAFKA_SASL_PORT}", "--topic",
                          topic, "--max_num_records", "1", "--qdrant_path",
                          str(tmp_path / "q2"), *SASL], "not-the-password")
    assert wrong.returncode == 2
    assert "not reachable" in wrong.stderr and "Traceback" not in wrong.stderr
    assert "not-the-password" not in wrong.stdout + wrong.stderr
