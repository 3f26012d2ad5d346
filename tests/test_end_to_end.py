"""End to end on real parts: the Kafka broker, the default model (multilingual USE), the embedded
Qdrant Edge store (and qdrant-client's local mode for the server code path)."""
import json
import time
import uuid


from conftest import GroupOffsets, PipelineProcess, consume_all
from vectorstream.io.produce import generate, make_bad, produce
from vectorstream.io.qdrant import open_store
from vectorstream.pipeline.launch import run
from vectorstream.transforms.events import point_id
from vectorstream.transforms.parse import original_bytes

COLLECTION = "ecommerce_events"


def bounded_argv(kafka, topic, count, store_flags, group=None):
    return ["--bootstrap_servers", kafka, "--topic", topic,
            "--consumer_group", group or f"g-{uuid.uuid4().hex[:8]}",
            "--max_num_records", str(count), "--max_read_time", "300",
            "--window_seconds", "5", *store_flags]


def embed(text):
    from vectorstream.transforms.model import embed_query as _embed_query
    return _embed_query(text, None)


def test_valid_events_are_stored_and_malformed_ones_dead_lettered(kafka, topic, tmp_path):
    messages = list(generate(150, products=60, bad_fraction=0.1, seed=11))
    # Every kind of malformed message the generator knows, at least once.
    from vectorstream.io.produce import BAD_KINDS
    import random
    rng = random.Random(3)
    template = next(m[2] for m in messages if m[2])
    messages += [(b"k", make_bad(rng, {**template, "event_id": str(uuid.uuid4())}, kind), None)
                 for kind in BAD_KINDS]
    produce(kafka, topic, messages)
    valid = [m[2] for m in messages if m[2] is not None]
    bad = [m[1] for m in messages if m[2] is None]
    path = str(tmp_path / "qdrant")

    result = run(bounded_argv(kafka, topic, len(messages), ["--qdrant_path", path]))

    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]
                if c.key.metric.namespace == "vectorstream"}
    assert counters["events_read"] == len(messages)
    assert counters["events_invalid"] == len(bad)
    assert counters["points_written"] == len(valid)
    assert counters["dead_letters"] == len(bad)
    distributions = {d.key.metric.name: d.committed
                     for d in result.metrics().query()["distributions"]}
    assert distributions["write_batch_size"].sum == len(valid)
    assert distributions["event_to_stored_ms"].count == len(valid)
    assert distributions["inference_batch_latency_micro_secs"].count >= 1
    inferences = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]
                  if c.key.metric.namespace == "vectorstream.embed"}
    assert inferences["num_inferences"] >= 1  # RunInference counts batches of events
    assert counters["events_embedded"] == len(valid)

    store = open_store(path=path)
    try:
        stored = {h.id: h.payload for h in store.scroll(COLLECTION)}
        assert store.count(COLLECTION) == len(valid)
        assert set(stored) == {point_id(e["event_id"]) for e in valid}
        sample = stored[point_id(valid[0]["event_id"])]
        assert sample["event_id"] == valid[0]["event_id"]
        assert sample["product"] == valid[0]["product"]
        assert sample["model"] == "use-multilingual-v3" and sample["ingested_at"].endswith("Z")

        # Searching a product's description returns that product first.
        product = next(e["product"] for e in valid if "(model" not in e["product"]["description"])
        hits = store.search(COLLECTION, embed(product["description"]), limit=1)
        assert hits[0].payload["product"]["id"] == product["id"]
    finally:
        store.close()

    # Each malformed message is on the dead-letter topic, bytes intact, with its reason.
    letters = [json.loads(m.value()) for m in consume_all(kafka, f"{topic}.dlq", len(bad))]
    assert sorted(original_bytes(r) for r in letters) == sorted(bad)
    for record in letters:
        assert record["stage"] == "parse" and record["reason"]
        assert record["source"]["topic"] == topic
    reasons = " | ".join(r["reason"] for r in letters)
    for expected in ("invalid JSON", "not a JSON object", "product: Field required",
                     "product.price", "quantity", "event_type", "empty message", "not UTF-8",
                     "timestamp"):
        assert expected in reasons

    # A second run over the same topic (another consumer group) overwrites, never duplicates.
    run(bounded_argv(kafka, topic, len(messages), ["--qdrant_path", path]))
    store = open_store(path=path)
    try:
        assert store.count(COLLECTION) == len(valid)
    finally:
        store.close()


def test_server_code_path_with_qdrant_client_local_mode(kafka, topic, tmp_path):
    messages = list(generate(30, products=10, seed=5))
    produce(kafka, topic, messages)
    url = f"local://{tmp_path / 'local'}"
    run(bounded_argv(kafka, topic, len(messages), ["--qdrant_url", url]))
    store = open_store(url=url)
    try:
        assert {h.id for h in store.scroll(COLLECTION)} == {
            point_id(m[2]["event_id"]) for m in messages}
    finally:
        store.close()


def test_unbounded_run_makes_each_new_event_searchable_within_two_windows(
        kafka, topic, tmp_path):
    """`vectorstream run` with no bound, as a user starts it. A trickle of events (one every
    3 s) produced while it runs: each must be found by a semantic search of its description
    within 2 × window_seconds (and within flush_seconds + window). The search reads the
    embedded store while the pipeline holds it, from a copy taken at each try, as
    `vectorstream search` does."""
    window, flush = 4.0, 1.0
    path = str(tmp_path / "qdrant")
    group = f"stream-{uuid.uuid4().hex[:8]}"
    offsets = GroupOffsets(kafka, topic, group)
    pipeline = PipelineProcess("--bootstrap_servers", kafka, "--topic", topic,
                               "--consumer_group", group, "--window_seconds", str(window),
                               "--flush_seconds", str(flush), "--qdrant_path", path)

    def found(event, vector):
        store = open_store(path=path, read_only=True)
        try:
            hits = store.search(COLLECTION, vector, limit=1)
            return bool(hits) and hits[0].id == point_id(event["event_id"])
        finally:
            store.close()

    try:
        # Warm up: the first event waits for the model to load.
        produce(kafka, topic, list(generate(1, seed=1)))
        offsets.wait_for(1, timeout=180, pipeline=pipeline)
        for i, (_, _, event) in enumerate(generate(3, seed=99)):
            description = f"Paslanmaz çelik vakumlu termos, {12 * (i + 1)} saat sıcak tutar"
            event["product"] = {**event["product"], "id": f"probe-{i}",
                                "name": f"Sıcak su termosu {i}", "description": description}
            vector = embed(description)
            started = time.time()
            produce(kafka, topic, [(b"probe", json.dumps(event, ensure_ascii=False).encode())])
            while not found(event, vector):
                assert pipeline.alive(), pipeline.output()
                assert time.time() - started < 4 * window, f"event {i} never found"
                time.sleep(0.2)
            elapsed = time.time() - started
            print(f"event {i} searchable after {elapsed:.2f}s")  # shown with pytest -s
            assert elapsed <= min(2 * window, flush + window), \
                f"event {i} searchable after {elapsed:.1f}s"
            time.sleep(3)
    finally:
        pipeline.stop()
        offsets.close()


def test_dead_letters_to_a_file_then_show_and_replay(kafka, topic, tmp_path):
    messages = list(generate(40, products=10, bad_fraction=0.3, seed=8))
    bad = sorted(m[1] for m in messages if m[2] is None)
    produce(kafka, topic, messages)
    letters = tmp_path / "dead.jsonl"
    run(bounded_argv(kafka, topic, len(messages),
                     ["--qdrant_path", str(tmp_path / "q"), "--dead_letter_path", str(letters)]))
    records = [json.loads(line) for line in letters.read_text().splitlines()]
    assert sorted(original_bytes(r) for r in records) == bad

    from test_options import run_cli
    shown = run_cli("deadletters", "show", "--path", str(letters))
    assert shown.returncode == 0 and f"{len(bad)} dead letter(s)" in shown.stdout
    from vectorstream.io.kafka_admin import ensure_topic
    fixed = f"{topic}-replayed"
    ensure_topic(kafka, fixed)
    replayed = run_cli("deadletters", "replay", "--path", str(letters), "--to_topic", fixed,
                       "--bootstrap_servers", kafka)
    assert replayed.returncode == 0, replayed.stderr
    assert sorted(m.value() or b"" for m in consume_all(kafka, fixed, len(bad))) == bad


def test_a_streaming_run_writes_each_malformed_message_to_the_dead_letter_topic(
        kafka, topic, tmp_path):
    """An unbounded run on the DirectRunner, as `vectorstream run` starts by default: every
    malformed message reaches <topic>.dlq while it runs. (The dead letters of every stage
    were once flattened into a stage of their own, which the streaming DirectRunner never
    ran: none were written, to the topic or a file.)"""
    from conftest import consume_all
    messages = list(generate(120, seed=61, bad_fraction=0.15))
    bad = sum(1 for m in messages if m[2] is None)
    group = f"dlq-{uuid.uuid4().hex[:8]}"
    offsets = GroupOffsets(kafka, topic, group)
    pipeline = PipelineProcess("--bootstrap_servers", kafka, "--topic", topic,
                               "--consumer_group", group, "--window_seconds", "2",
                               "--qdrant_path", str(tmp_path / "qdrant"))
    try:
        produce(kafka, topic, messages)
        offsets.wait_for(len(messages), timeout=240, pipeline=pipeline)
        dead = consume_all(kafka, f"{topic}.dlq", bad, timeout=60)
    finally:
        pipeline.stop()
        offsets.close()
    records = [json.loads(m.value()) for m in dead]
    assert len({(r["source"]["partition"], r["source"]["offset"]) for r in records}) == bad
    assert all(r["stage"] == "parse" and r["reason"] for r in records)
