"""The Qdrant sink: batching by count, bytes and age, retries of transient failures, and
dead letters for points Qdrant refuses.

Real embedded Qdrant Edge underneath. No Qdrant server runs on these machines, so outages
(connection refused, HTTP 503 with Retry-After) are injected at the client boundary by
`FlakyStore`, which wraps the real store and fails its first upserts on purpose. Refused
points are real: Qdrant Edge itself rejects a vector of the wrong size.
"""
import time
import uuid

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from vectorstream.io.qdrant import open_store
from vectorstream.io.sink import WriteToQdrantFn, is_transient
from vectorstream.transforms.parse import ParsedEvent

DIM = 4
FAULTS = {"remaining": 0, "calls": 0, "batches": []}


class Http503(Exception):
    """Shaped like qdrant-client's UnexpectedResponse for a 503 with Retry-After."""
    status_code = 503
    headers = {"retry-after": "0.05"}


class FlakyStore:
    """The real store, but its first FAULTS['remaining'] upserts fail (injected fault)."""

    def __init__(self, store):
        self._store = store
        self.description = store.description

    def __getattr__(self, name):
        return getattr(self._store, name)

    def upsert(self, name, points):
        FAULTS["calls"] += 1
        if FAULTS["remaining"] > 0:
            FAULTS["remaining"] -= 1
            raise ConnectionError("Connection refused") if FAULTS["remaining"] % 2 else Http503()
        FAULTS["batches"].append(len(points))
        return self._store.upsert(name, points)


def flaky_opener(url=None, path=None, grpc=True):
    return FlakyStore(open_store(url=url, path=path, grpc=grpc))


@pytest.fixture(autouse=True)
def reset_faults():
    FAULTS.update(remaining=0, calls=0, batches=[])


def element(i, vector=None):
    event_id = f"evt-{i}"
    payload = {"event_id": event_id, "event_type": "view", "product": {"name": f"p{i}"},
               "kafka": {"topic": "t", "partition": 0, "offset": i,
                         "timestamp_ms": int(time.time() * 1000)}}
    from vectorstream.transforms.events import point_id
    return ParsedEvent(point_id(event_id), payload, f"p{i}"), vector or [1.0, 0.0, 0.0, float(i)]


def batches(elements, size=7):
    """(event, vector) pairs → the (events, vectors) batches the sink takes."""
    elements = list(elements)
    return [([e for e, _ in elements[i:i + size]], [v for _, v in elements[i:i + size]])
            for i in range(0, len(elements), size)]


def sink(path, **kwargs):
    return WriteToQdrantFn("events", DIM, "test-model", path=str(path), opener=flaky_opener,
                           **kwargs)


def test_transient_failures_are_retried_and_nothing_is_lost_or_doubled(tmp_path):
    FAULTS["remaining"] = 4
    with TestPipeline() as p:
        dead = (p | beam.Create(batches(element(i) for i in range(50)))
                | beam.ParDo(sink(tmp_path / "q", batch_size=20, retry_seconds=30)))
        assert_that(dead, equal_to([]))
    assert FAULTS["remaining"] == 0 and FAULTS["calls"] >= 5
    store = open_store(path=str(tmp_path / "q"))
    try:
        assert store.count("events") == 50
    finally:
        store.close()


def test_outage_longer_than_the_retry_budget_fails_loudly(tmp_path):
    FAULTS["remaining"] = 10_000
    with pytest.raises(Exception, match="kept failing"):
        with TestPipeline() as p:
            _ = (p | beam.Create(batches(element(i) for i in range(3)))
                 | beam.ParDo(sink(tmp_path / "q", retry_seconds=1)))


def test_a_refused_point_alone_goes_to_dead_letters(tmp_path):
    elements = [element(i) for i in range(30)]
    elements[17] = element(17, vector=[1.0, 2.0])  # wrong size: Qdrant Edge refuses it
    with TestPipeline() as p:
        dead = (p | beam.Create(batches(elements))
                | beam.ParDo(sink(tmp_path / "q", batch_size=100)))
        assert_that(dead | beam.Map(lambda r: (r["stage"], r["source"]["offset"],
                                               "dimension" in r["reason"])),
                    equal_to([("write", 17, True)]))
    store = open_store(path=str(tmp_path / "q"))
    try:
        assert store.count("events") == 29
    finally:
        store.close()


def test_flushes_on_bytes_and_on_age(tmp_path):
    fn = sink(tmp_path / "q", batch_size=1000, batch_bytes=2_000, flush_seconds=0.3)
    fn.setup()
    try:
        fn.start_bundle()
        for i in range(12):  # ~250 bytes a point: the byte limit splits them
            list(fn.process(batches([element(i)])[0]))
        assert FAULTS["batches"] and max(FAULTS["batches"]) < 12
        written = sum(FAULTS["batches"])
        list(fn.process(batches([element(100)])[0]))
        time.sleep(0.35)
        list(fn.process(batches([element(101)])[0]))  # the buffer is older than flush_seconds now
        assert sum(FAULTS["batches"]) == 14 > written
        list(fn.finish_bundle())
    finally:
        fn.teardown()


@pytest.mark.parametrize("exc, transient", [
    (ConnectionError("refused"), True), (TimeoutError(), True), (Http503(), True),
    (type("E", (Exception,), {"status_code": 429})(), True),
    (type("E", (Exception,), {"status_code": 400})(), False),
    (Exception("Vector dimension error: expected dim: 4, got 2"), False),
    (Exception("Can't init WAL: Kind(WouldBlock)"), True),
])
def test_failure_classification(exc, transient):
    assert is_transient(exc) is transient


def test_during_an_outage_the_pipeline_holds_back(kafka, topic, tmp_path):
    """Qdrant down (injected at the client) while 2,000 events wait in Kafka: the reader,
    fused with the blocked sink, reads no further than the batches in flight, so memory
    stays bounded; when Qdrant is back everything is stored."""
    import threading
    from vectorstream.io.produce import generate, produce
    from vectorstream.pipeline.graph import build
    from vectorstream.config.options import parse_options
    from vectorstream.telemetry import TALLY

    messages = list(generate(2000, products=100, seed=12))
    produce(kafka, topic, messages)
    options = parse_options(["--bootstrap_servers", kafka, "--topic", topic,
                             "--consumer_group", f"outage-{uuid.uuid4().hex[:6]}",
                             "--max_num_records", "2000", "--max_read_time", "300",
                             "--qdrant_path", str(tmp_path / "q"), "--write_batch_size", "64",
                             "--batch_events", "100",
                             "--dead_letter_path", str(tmp_path / "dead.jsonl")])
    FAULTS["remaining"] = 10_000  # down from the start
    before = TALLY.snapshot(0)[0]
    pipeline = beam.Pipeline(options=options)
    build(pipeline, options, opener=flaky_opener)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (pipeline.run().wait_until_finish(), done.set()))
    worker.start()
    try:
        deadline = time.time() + 120
        while FAULTS["calls"] < 6 and time.time() < deadline:  # retries under way
            time.sleep(0.2)
        time.sleep(3)
        read = TALLY.snapshot(0)[0]["read"] - before["read"]
        assert FAULTS["calls"] >= 6 and not FAULTS["batches"]
        assert read < 500, f"read {read} events while Qdrant was down"
    finally:
        FAULTS["remaining"] = 0  # Qdrant is back
        worker.join(300)
    assert done.is_set()
    store = open_store(path=str(tmp_path / "q"))
    try:
        assert store.count("ecommerce_events") == 2000
    finally:
        store.close()


# -- several writes in flight (what the sink does for a Qdrant server, --write_in_flight).
# The real embedded store underneath; `SlowStore` makes each upsert take a random few
# milliseconds (an injected delay, so writes overlap and finish out of order as a
# server's do) and records the order the writes of each point id reached the store.

class SlowStore(FlakyStore):
    import threading as _threading
    order = []  # (point id, fingerprint) in the order they were upserted
    lock = _threading.Lock()

    def upsert(self, name, points):
        import random
        time.sleep(random.uniform(0.001, 0.02))
        result = super().upsert(name, points)
        with self.lock:
            self.order += [(p.id, p.payload.get("delivery")) for p in points]
        return result


def slow_opener(url=None, path=None, grpc=True):
    return SlowStore(open_store(url=url, path=path, grpc=grpc))


def version(i, v):
    """Event i's v-th delivery: the same event (a replay: same fingerprint), marked so the
    store's last write of it can be told."""
    event, vector = element(i)
    payload = {**event.payload, "event_hash": f"r1:{i}", "delivery": v}
    return event._replace(payload=payload), vector


def test_writes_in_flight_keep_each_point_ids_order_and_end_with_the_bundle(tmp_path):
    SlowStore.order = []
    # Three deliveries of events 0-39 (replays), in batches of 5, each group of five
    # delivered three times in a row and followed by a new event: consecutive batches,
    # in flight together, hold the same point ids.
    elements = []
    for group in range(0, 40, 5):
        for v in range(3):
            elements += [version(i, v) for i in range(group, group + 5)]
        elements.append(element(100 + group))
    fn = WriteToQdrantFn("events", DIM, "test-model", path=str(tmp_path / "q"),
                         opener=slow_opener, batch_size=5, in_flight=4)
    fn.setup()
    try:
        fn.start_bundle()
        dead = []
        from apache_beam.transforms.window import GlobalWindow
        for batch in batches(elements, size=5):
            dead += list(fn.process(batch, window=GlobalWindow()))
        dead += list(fn.finish_bundle())
        # The bundle ends only when every write is acknowledged: all stored, none pending.
        assert fn._pending == [] and dead == []
        assert fn._store.count("events") == 48
        stored = fn._store.payload_field("events", [element(i)[0].point_id for i in range(40)],
                                         "delivery")
    finally:
        fn.teardown()
    assert set(stored.values()) == {2}, "the last write of each point is the last delivery"
    for i in range(40):
        pid = element(i)[0].point_id
        assert [v for p, v in SlowStore.order if p == pid] == [0, 1, 2]


def test_writes_in_flight_retry_transient_failures_and_dead_letter_refused_points(tmp_path):
    FAULTS["remaining"] = 5
    elements = [element(i) for i in range(60)]
    elements[33] = element(33, vector=[1.0, 2.0])  # wrong size: the store refuses it
    with TestPipeline() as p:
        dead = (p | beam.Create(batches(elements, size=6))
                | beam.ParDo(WriteToQdrantFn("events", DIM, "test-model",
                                             path=str(tmp_path / "q"), opener=slow_opener,
                                             batch_size=6, in_flight=3, retry_seconds=30)))
        assert_that(dead | beam.Map(lambda r: (r["stage"], r["source"]["offset"])),
                    equal_to([("write", 33)]))
    assert FAULTS["remaining"] == 0
    store = open_store(path=str(tmp_path / "q"))
    try:
        assert store.count("events") == 59
    finally:
        store.close()


def test_a_write_in_flight_that_fails_for_good_fails_the_bundle(tmp_path):
    FAULTS["remaining"] = 10_000
    with pytest.raises(Exception, match="kept failing"):
        with TestPipeline() as p:
            _ = (p | beam.Create(batches(element(i) for i in range(20)))
                 | beam.ParDo(WriteToQdrantFn("events", DIM, "test-model",
                                              path=str(tmp_path / "q"), opener=slow_opener,
                                              batch_size=4, in_flight=4, retry_seconds=1)))
