"""Runner presets, the reader choice, and the runs on other engines.

Beam's Prism runner (a portable job server in Go, built once with `go install` from the
Go module proxy) runs the end-to-end test here: the pipeline goes through a separate job
service, the Fn API and bundle finalization, as on Flink.

The FlinkRunner end-to-end test and the Java-reader equivalence test need Beam's Flink job
server and IO expansion service jars; Maven fetches them into Beam's jar cache. Where
Maven Central (as this machine reaches it) does not serve them, those two tests are
skipped with Maven's own error, and the test below proves a user gets one readable
message instead of a stack trace.
"""
import uuid

import pytest

from vectorstream.pipeline.options import UsageError, parse_options
from vectorstream.runners.java import choose_reader, environment_args
from vectorstream.runners.maven import MavenError
from vectorstream.runners.presets import PRESETS, apply_preset

REQUIRED_VALUES = {"--project": "p", "--region": "us-central1", "--temp_location": "gs://b/t",
                   "--sdk_container_image": "r/p/worker:1", "--qdrant_url": "https://q:6333",
                   "--bootstrap_servers": "b:9092"}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_parses_and_picks_its_runner_and_reader(name):
    preset = PRESETS[name]
    argv = ["--preset", name, "--topic", "t"]
    for flag, _ in preset.required:
        argv += [flag, REQUIRED_VALUES[flag]]
    options = parse_options(apply_preset(argv))
    runner = options.get_all_options()["runner"]
    assert runner == {"direct": "DirectRunner", "prism": "PrismRunner",
                      "flink-local": "FlinkRunner",
                      "flink": "FlinkRunner", "dataflow-gpu": "DataflowRunner"}[name]
    assert choose_reader(options) == ("java" if name in ("flink", "dataflow-gpu")
                                      else "python")


def test_the_command_line_overrides_the_preset():
    options = parse_options(apply_preset(["--preset=flink-local", "--parallelism", "4"]))
    assert options.get_all_options()["parallelism"] == 4


def test_a_preset_missing_what_only_you_know_says_what_to_give():
    with pytest.raises(UsageError, match="--project .*--region"):
        apply_preset(["--preset", "dataflow-gpu", "--topic", "t"])
    with pytest.raises(UsageError, match="unknown --preset 'spark'"):
        apply_preset(["--preset", "spark"])


def test_auto_reader_is_java_only_where_workers_have_a_jvm():
    assert choose_reader(parse_options([])) == "python"
    assert choose_reader(parse_options(["--runner", "FlinkRunner"])) == "java"
    assert choose_reader(parse_options(["--runner", "DataflowRunner"])) == "java"
    assert choose_reader(parse_options(["--runner", "FlinkRunner",
                                        "--kafka_reader", "python"])) == "python"


def test_java_environment_flag():
    assert environment_args("PROCESS:/opt/apache/beam_java/boot") == [
        "--defaultEnvironmentType=PROCESS",
        '--defaultEnvironmentConfig={"command": "/opt/apache/beam_java/boot"}']
    assert environment_args("EMBEDDED") == ["--defaultEnvironmentType=EMBEDDED"]
    with pytest.raises(UsageError):
        environment_args("DOCKER")


def test_a_java_jar_maven_cannot_fetch_is_one_readable_message(tmp_path, monkeypatch):
    from vectorstream.runners import java
    monkeypatch.setattr(java, "JAR_CACHE", str(tmp_path))
    with pytest.raises(MavenError, match="could not fetch org.apache.beam:"
                                         "beam-no-such-artifact:0.0.1 with Maven") as info:
        java.beam_jar("beam-no-such-artifact", "0.0.1")
    assert "--kafka_reader=python" in str(info.value)
    assert "\n" not in str(info.value)


def _jar_or_skip(fetch):
    try:
        return fetch()
    except MavenError as exc:
        pytest.skip(f"not available on this machine: {exc}")


def test_java_and_python_readers_give_the_same_elements(kafka, tmp_path):
    """Both readers over one 4-partition topic: the same (partition, offset, key, value,
    timestamp) set. Runs where Beam's IO expansion service jar can be fetched."""
    import apache_beam as beam
    from vectorstream.io.kafka import KafkaSource, ReadEvents, ensure_topic
    from vectorstream.io.produce import generate, produce
    from vectorstream.runners import java
    _jar_or_skip(lambda: java.beam_jar(java.IO_EXPANSION_SERVICE))
    topic = f"readers-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=4)
    produce(kafka, topic, list(generate(200, seed=5)))
    seen = {}
    for reader in ("python", "java"):
        out = tmp_path / reader
        source = KafkaSource(kafka, topic, group=f"{reader}-{topic}", max_num_records=200)
        with beam.Pipeline() as p:
            (p | ReadEvents(source, reader=reader, java_environment="EMBEDDED")
             | beam.FlatMap(lambda batch: batch)
             | beam.Map(lambda m: repr((m.partition, m.offset, m.key, m.value, m.timestamp_ms)))
             | beam.io.WriteToText(str(out)))
        seen[reader] = {line for path in tmp_path.glob(f"{reader}*")
                        for line in path.read_text().splitlines()}
    assert len(seen["python"]) == 200
    assert seen["python"] == seen["java"]


@pytest.mark.parametrize("bounded", [True, False], ids=["bounded", "unbounded"])
def test_flink_runner_stores_each_valid_event_exactly_once(kafka, tmp_path, bounded):
    """FlinkRunner (embedded mini-cluster, LOOPBACK Python), 4 partitions, parallelism 2,
    checkpointing on: each valid event stored once. Runs where Beam's Flink job server jar
    can be fetched."""
    from vectorstream.runners import java
    jar = _jar_or_skip(java.flink_job_server_jar)
    _run_on(kafka, tmp_path, ["--preset", "flink-local", "--flink_job_server_jar", jar,
                              "--kafka_reader", "python"], bounded)


def _run_on(kafka, tmp_path, runner_flags, bounded, count=400):
    import subprocess
    import sys
    from vectorstream.io.kafka import ensure_topic
    from vectorstream.io.produce import generate, produce
    from vectorstream.io.qdrant import open_store
    topic = f"runner-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=4)
    messages = list(generate(count, seed=9, bad_fraction=0.05))
    produce(kafka, topic, messages)
    valid = {m[2]["event_id"] for m in messages if m[2] is not None}
    group = f"g-{topic}"
    argv = runner_flags + [
        "--bootstrap_servers", kafka, "--topic", topic, "--consumer_group", group,
        "--qdrant_path", str(tmp_path / "q"), "--dead_letter_path",
        str(tmp_path / "dead.jsonl"), "--progress_seconds", "0"]
    argv += (["--max_num_records", str(len(messages))] if bounded
             else ["--max_read_time", "20", "--streaming"])
    # In its own process, as a user runs it: Beam keeps a started portable runner for the
    # process, and the DirectRunner of later tests would then use it too.
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "vectorstream", "run", *argv],
                              stdout=out, stderr=subprocess.STDOUT, timeout=500)
    assert proc.returncode == 0, log.read_text()[-3000:]
    store = open_store(path=str(tmp_path / "q"))
    try:
        ids = [h.payload["event_id"] for h in store.scroll("ecommerce_events")]
    finally:
        store.close()
    assert sorted(ids) == sorted(valid), "each valid event stored exactly once"
    dead = (tmp_path / "dead.jsonl").read_text().splitlines()
    assert len(dead) == len(messages) - len(valid)
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(4)],
                                       timeout=10)
    finally:
        consumer.close()
    assert sum(tp.offset for tp in committed) == len(messages), "offsets committed"


@pytest.mark.parametrize("bounded", [True, False], ids=["bounded", "unbounded"])
def test_prism_runner_stores_each_valid_event_exactly_once(kafka, tmp_path, bounded):
    """PrismRunner (Beam's portable runner; LOOPBACK Python), 4 partitions, bounded and
    streaming: each valid event stored once, each bad one a dead letter, offsets
    committed through bundle finalization."""
    from vectorstream.runners import java
    _jar_or_skip(java.prism_binary)  # built with Go on first use (a few minutes)
    _run_on(kafka, tmp_path, ["--preset", "prism"], bounded)


def test_kafkaio_rows_become_the_same_messages_as_our_reader_gives():
    """The mapping of KafkaIO's with-metadata rows (its ByteArrayKafkaRecord schema) to
    KafkaMessage, with the event's own time as the element timestamp."""
    import apache_beam as beam
    from vectorstream.io.kafka import KafkaMessage, _from_kafka_row
    value = b'{"event_id": "e1", "timestamp": "2024-01-15T10:30:00Z"}'

    def row(value):
        return beam.Row(topic="t", partition=2, offset=7, timestamp=1_800_000_000_000,
                        key=b"k", value=value, headers=None, timestampTypeId=0,
                        timestampTypeName="CreateTime")

    stamped = _from_kafka_row(row(value))
    assert stamped.value == KafkaMessage("t", 2, 7, b"k", value, 1_800_000_000_000)
    assert stamped.timestamp.micros == 1_705_314_600 * 1_000_000  # the event's own time
    # no event time to read: Kafka's
    assert _from_kafka_row(row(b"not json")).timestamp.micros == 1_800_000_000_000 * 1000
