"""Failures of the real parts: the pipeline process killed mid-stream and started again,
and the Kafka broker restarted under a running pipeline. Each valid event must end up
stored exactly once (points = distinct valid event ids), none lost."""
import threading
import time
import uuid

import pytest

from conftest import GroupOffsets, PipelineProcess
from vectorstream.io.produce import generate, produce
from vectorstream.io.qdrant import open_store
from vectorstream.transforms.events import point_id


def stored_ids(path):
    store = open_store(path=path)
    try:
        return [h.id for h in store.scroll("ecommerce_events")]
    finally:
        store.close()


def run_args(kafka, topic, group, path):
    return ["--bootstrap_servers", kafka, "--topic", topic, "--consumer_group", group,
            "--window_seconds", "2", "--qdrant_path", path]


def test_sigkill_mid_stream_then_restart_stores_every_event_once(kafka, topic, tmp_path):
    messages = list(generate(900, products=200, bad_fraction=0.05, seed=21))
    valid = {point_id(m[2]["event_id"]) for m in messages if m[2]}
    path, group = str(tmp_path / "q"), f"crash-{uuid.uuid4().hex[:6]}"
    offsets = GroupOffsets(kafka, topic, group)
    # The stream starts once the pipeline is up and has committed a first part, so the
    # kill lands mid-stream however long the start takes on a busy machine.
    head, rest = messages[:60], messages[60:]
    producer = threading.Thread(target=produce, args=(kafka, topic, rest), kwargs={"rate": 60})
    first = PipelineProcess(*run_args(kafka, topic, group, path))
    try:
        produce(kafka, topic, head)
        offsets.wait_for(len(head), timeout=180, pipeline=first)
        producer.start()
        offsets.wait_for(len(head) + 90, timeout=180, pipeline=first)  # well into the stream
        first.kill()  # SIGKILL: no flush, no commit, no goodbye
        killed_at = offsets.total()
        assert killed_at < len(messages), "the stream was over before the kill"
        second = PipelineProcess(*run_args(kafka, topic, group, path))
        try:
            producer.join()
            offsets.wait_for(len(messages), timeout=240, pipeline=second)
        finally:
            second.stop()
    finally:
        first.stop()
        offsets.close()
    ids = stored_ids(path)
    assert len(ids) == len(set(ids)) == len(valid)
    assert set(ids) == valid


def test_broker_restart_mid_run_loses_nothing(kafka_broker, kafka, topic, tmp_path):
    if kafka_broker is None:
        pytest.skip("the broker was not started by these tests, so they cannot restart it")
    first_half = list(generate(100, products=50, seed=31))
    second_half = list(generate(100, products=50, seed=32))
    path, group = str(tmp_path / "q"), f"restart-{uuid.uuid4().hex[:6]}"
    offsets = GroupOffsets(kafka, topic, group)
    pipeline = PipelineProcess(*run_args(kafka, topic, group, path))
    try:
        produce(kafka, topic, first_half)
        offsets.wait_for(100, timeout=180, pipeline=pipeline)
        kafka_broker.stop()
        time.sleep(5)  # the pipeline runs on without a broker for a while
        assert pipeline.alive()
        kafka_broker.start()
        produce(kafka, topic, second_half)
        offsets.wait_for(200, timeout=180, pipeline=pipeline)
    finally:
        pipeline.stop()
        offsets.close()
    ids = stored_ids(path)
    assert len(ids) == 200
    assert set(ids) == {point_id(m[2]["event_id"]) for m in first_half + second_half}
