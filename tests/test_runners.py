"""Runner presets, the reader choice, and the pipeline end to end on Beam's portable runners.

Beam's Prism runner (a portable job server in Go, built once with `go install` from the
Go module proxy) and Beam's FlinkRunner on an embedded Flink mini-cluster (Beam's Flink
job server, assembled with Maven from the parts Maven Central serves) each run the whole
pipeline against the real broker: a topic of 4 partitions, bounded and streaming, with our
Python reader and with Beam's Java KafkaIO. The separate Flink cluster is in
test_flink_cluster.py.
"""
import os
import uuid

import pytest

from conftest import run_end_to_end
from vectorstream.config.options import UsageError, parse_options
from vectorstream.runners.java import environment_args
from vectorstream.io.maven import MavenError
from vectorstream.config.presets import PRESETS, apply_preset
from vectorstream.pipeline.plan import resolve

REQUIRED_VALUES = {"--project": "p", "--region": "us-central1", "--temp_location": "gs://b/t",
                   "--sdk_container_image": "r/p/worker:1", "--qdrant_url": "https://q:6333",
                   "--bootstrap_servers": "b:9092"}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_parses_and_picks_its_runner_and_reader(name):
    preset = PRESETS[name]
    argv = ["--preset", name, "--topic", "t"]
    for flag, _ in preset.required:
        argv += [flag, REQUIRED_VALUES[flag]]
    if name == "flink":  # Python workers of their own: a Qdrant server
        argv += ["--qdrant_url", REQUIRED_VALUES["--qdrant_url"]]
    plan = resolve(argv)
    runner = plan.options.get_all_options()["runner"]
    assert runner == plan.runner == {"direct": "DirectRunner", "prism": "PrismRunner",
                                     "flink-local": "FlinkRunner",
                                     "flink": "FlinkRunner", "dataflow-gpu": "DataflowRunner"}[name]
    assert plan.reader == ("java" if name in ("flink-local", "flink", "dataflow-gpu")
                           else "python")


def test_the_command_line_overrides_the_preset():
    options = parse_options(apply_preset(["--preset=flink-local", "--parallelism", "4"]))
    assert options.get_all_options()["parallelism"] == 4


def test_flink_runs_finish_the_bundle_in_flight_before_a_checkpoint_unless_told_not_to():
    """Without it a checkpoint during the reader's split bundle kept the partitions to read
    in Flink's checkpoint, and a streaming run read nothing (docs/runners.md)."""
    def finish(argv, bounded=False):
        if bounded:
            argv = argv + ["--max_num_records", "10"]
        options = resolve(argv).options
        return options.get_all_options()["finish_bundle_before_checkpointing"]
    assert finish(["--preset", "flink-local"]) is True
    assert finish(["--preset", "flink", "--topic", "t", "--qdrant_url", "http://q:6333"],
                  bounded=True) is True
    assert finish(["--runner", "FlinkRunner"]) is True
    assert finish(["--preset", "flink-local", "--finish_bundle_before_checkpointing",
                   "false"]) is False
    assert finish(["--preset", "prism"]) is None
    with pytest.raises(UsageError, match="finish_bundle_before_checkpointing"):
        parse_options(["--runner", "FlinkRunner", "--finish_bundle_before_checkpointing",
                       "maybe"])


def test_a_preset_missing_what_only_you_know_says_what_to_give():
    with pytest.raises(UsageError, match="--project .*--region"):
        apply_preset(["--preset", "dataflow-gpu", "--topic", "t"])
    with pytest.raises(UsageError, match="unknown --preset 'spark'"):
        apply_preset(["--preset", "spark"])


def test_dataflow_without_beams_gcp_extra_is_one_line_saying_what_to_install():
    """A plain install leaves Beam's GCP extra out (0.4 s of every run's start-up); a
    Dataflow run then stops before it touches anything, saying what to install."""
    import subprocess
    import sys
    from vectorstream.pipeline.launch import has_beams_gcp_extra
    if has_beams_gcp_extra():
        pytest.skip("Beam's GCP extra is installed here (pip install '.[dataflow]')")
    proc = subprocess.run(
        [sys.executable, "-m", "vectorstream", "run", "--preset", "dataflow-gpu", "--project",
         "p", "--region", "us-central1", "--temp_location", "gs://b/t", "--topic", "t",
         "--sdk_container_image", "i", "--bootstrap_servers", "127.0.0.1:1",
         "--qdrant_url", "http://127.0.0.1:6333"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "vectorstream: error: the Dataflow runner needs Beam's GCP extra, which a plain install "
        "leaves out: pip install 'vectorstream[dataflow]'"], proc.stderr


def test_auto_reader_is_java_only_where_workers_have_a_jvm():
    assert resolve([]).reader == "python"
    assert resolve(["--runner", "FlinkRunner"]).reader == "java"
    assert resolve(["--runner", "DataflowRunner", "--qdrant_url", "http://q:6333"]).reader == "java"
    assert resolve(["--runner", "FlinkRunner", "--kafka_reader", "python"]).reader == "python"


def test_java_environment_flag():
    assert environment_args("PROCESS:/opt/apache/beam_java/boot") == [
        "--defaultEnvironmentType=PROCESS",
        '--defaultEnvironmentConfig={"command": "/opt/apache/beam_java/boot"}']
    assert environment_args("EMBEDDED") == ["--defaultEnvironmentType=EMBEDDED"]
    with pytest.raises(UsageError):
        environment_args("DOCKER")


def test_a_java_jar_maven_cannot_build_is_one_readable_message(tmp_path):
    """A pom whose dependency Maven Central does not serve: one line that names it and
    says what to do (the real poms are built by the tests below)."""
    from vectorstream.runners import java
    pom = tmp_path / "pom.xml"
    pom.write_text("""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion><groupId>t</groupId><artifactId>t</artifactId>
  <version>1</version><properties><beam.version>0.0.1</beam.version></properties>
  <dependencies><dependency><groupId>org.apache.beam</groupId>
    <artifactId>beam-no-such-artifact</artifactId><version>0.0.1</version></dependency>
  </dependencies>
  <build><finalName>t-${beam.version}</finalName></build></project>""")
    with pytest.raises(MavenError, match="could not build t-0.0.1.jar with Maven") as info:
        java.assembled_jar(str(pom), dest=str(tmp_path / "jars"))
    assert "beam-no-such-artifact" in str(info.value)
    assert "--kafka_reader=python" in str(info.value)
    assert "\n" not in str(info.value)


def test_several_python_worker_processes_need_a_qdrant_server():
    """An EXTERNAL worker pool (or PROCESS/DOCKER) runs the Python code in processes of
    their own, and an embedded store takes one writer: one line that says what to do."""
    for flags in (["--preset", "flink"],
                  ["--preset", "flink", "--qdrant_url", "local:///tmp/x"],
                  ["--runner", "FlinkRunner", "--environment_type", "PROCESS",
                   "--environment_config", '{"command": "boot"}'],
                  ["--preset", "flink-local", "--sdk_worker_parallelism", "2"]):
        with pytest.raises(UsageError, match="give --qdrant_url http://HOST:6333"):
            resolve(flags)
    resolve(["--preset", "flink", "--qdrant_url", "http://qdrant:6333"])
    resolve(["--preset", "flink", "--environment_type", "LOOPBACK"])
    resolve(["--preset", "flink-local"])


def _built(build):
    """A jar or binary built on first use (Maven, Go): a failure is the test's failure,
    with the tool's own one-line message."""
    try:
        return build()
    except MavenError as exc:
        pytest.fail(f"could not build what the runner needs: {exc}")


def test_java_and_python_readers_give_the_same_elements(kafka, tmp_path):
    """Both readers over one 4-partition topic, each on Prism: the same (partition,
    offset, key, value, timestamp) set."""
    import subprocess
    import sys
    from vectorstream.io.kafka_admin import ensure_topic
    from vectorstream.io.produce import generate, produce
    from vectorstream.runners import java, prism as prism_runner
    prism = _built(prism_runner.prism_binary)
    _built(java.kafka_expansion_service_jar)
    topic = f"readers-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=4)
    produce(kafka, topic, list(generate(200, seed=5, bad_fraction=0.1)))
    seen = {}
    for reader in ("python", "java"):
        out = tmp_path / reader
        proc = subprocess.run(
            [sys.executable, os.path.join(os.path.dirname(__file__), "read_topic.py"), kafka,
             topic, f"{reader}-{topic}", "200", reader, prism, str(out)],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        seen[reader] = set(out.read_text().splitlines())
    assert len(seen["python"]) == 200
    assert seen["python"] == seen["java"]


def test_kafkaio_rows_become_the_same_messages_as_our_reader_gives():
    """The mapping of KafkaIO's with-metadata rows (its ByteArrayKafkaRecord schema) to
    KafkaMessage, with the event's own time as the element timestamp."""
    import apache_beam as beam
    from vectorstream.io.kafka_source import KafkaMessage
    from vectorstream.runners.kafkaio import _from_kafka_row
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


MODES = [True, False]
MODE_IDS = ["bounded", "streaming"]


@pytest.mark.parametrize("reader", ["java", "python"])
@pytest.mark.parametrize("bounded", MODES, ids=MODE_IDS)
def test_flink_mini_cluster_stores_each_valid_event_exactly_once(kafka, tmp_path, bounded,
                                                                 reader):
    """FlinkRunner on an embedded mini-cluster (`--preset flink-local`: Beam's Flink job
    server, assembled with Maven on first use), parallelism 2, Python in this run's
    process (LOOPBACK). Java reader: Beam's KafkaIO, EMBEDDED in Flink, offsets committed
    when checkpoints complete (every 2 s here). Python reader: ours, with the preset's
    10-s checkpoints. A checkpoint during the reader's split bundle, right after start,
    stalled the Python reader's streaming run for good until Flink runs finished the
    bundle before a checkpoint (`--finish_bundle_before_checkpointing`, docs/runners.md)."""
    from vectorstream.runners import java
    _built(java.flink_job_server_jar)
    _built(java.kafka_expansion_service_jar)
    flags = ["--preset", "flink-local", "--kafka_reader", reader]
    if reader == "java":
        flags += ["--checkpointing_interval", "2000"]
    run_end_to_end(kafka, tmp_path, flags, bounded)


def test_a_checkpoint_during_the_python_readers_first_bundle_does_not_stall_it(kafka,
                                                                                tmp_path):
    """Checkpoints every 300 ms, so the first one falls during the bundle that splits our
    reader into partitions. With `--finish_bundle_before_checkpointing false` (Beam's own
    default) such a run read nothing, every time here; the default now finishes that
    bundle first (docs/runners.md)."""
    from vectorstream.runners import java
    _built(java.flink_job_server_jar)
    run_end_to_end(kafka, tmp_path, ["--preset", "flink-local", "--kafka_reader", "python",
                                     "--checkpointing_interval", "300"], bounded=False)


@pytest.mark.parametrize("reader, bounded", [("python", True), ("python", False),
                                              ("java", True)],
                         ids=["bounded-python", "streaming-python", "bounded-java"])
def test_prism_runner_stores_each_valid_event_exactly_once(kafka, tmp_path, bounded, reader):
    """PrismRunner (Beam's portable runner; LOOPBACK Python): offsets committed through
    bundle finalization. Java reader (bounded runs): KafkaIO in the expansion service's
    own JVM."""
    from vectorstream.runners import java, prism
    _built(prism.prism_binary)  # built with Go on first use (a few minutes)
    if reader == "java":
        _built(java.kafka_expansion_service_jar)
    run_end_to_end(kafka, tmp_path, ["--preset", "prism", "--kafka_reader", reader], bounded)


def test_streaming_with_the_java_reader_on_prism_is_refused_in_one_line(kafka, topic):
    """KafkaIO commits offsets in a @RequiresStableInput step, which Prism cannot run."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "vectorstream", "run", "--preset", "prism",
                           "--kafka_reader", "java", "--bootstrap_servers", kafka,
                           "--topic", topic], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--kafka_reader java on Prism reads bounded runs only" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.server
def test_flink_mini_cluster_with_python_workers_in_processes_of_their_own(kafka, tmp_path,
                                                                          qdrant_url):
    """`--sdk_worker_parallelism 2` on the mini-cluster: `vectorstream run` starts a Python
    worker pool for the run, Flink asks it for two SDK workers, each a process, both
    writing to one Qdrant server."""
    import re
    url = qdrant_url
    output = run_end_to_end(kafka, tmp_path, [
        "--preset", "flink-local", "--sdk_worker_parallelism", "2",
        "--checkpointing_interval", "2000"], bounded=True, qdrant_url=url)
    log = re.search(r"Python SDK worker pool at \S+ \(log (\S+)\)", output).group(1)
    with open(log) as fh:
        assert fh.read().count("Starting worker with command") >= 2


def test_several_direct_runner_workers_are_refused_in_one_line():
    """Beam's DirectRunner with more than one worker drops a splittable read's checkpoints
    (docs/performance.md, "The DirectRunner's workers"): the plan refuses it."""
    for workers in ("2", "0"):
        with pytest.raises(UsageError, match=f"--direct_num_workers {workers} loses events"):
            resolve(["--direct_num_workers", workers, "--direct_running_mode",
                     "multi_processing"])
    assert resolve(["--direct_num_workers", "1"]).runner == "DirectRunner"


def test_a_finished_run_exits_after_its_atexit_handlers_and_waits_for_a_thread():
    """`cli.run.exit_process`: after a finished run, the atexit handlers run and what was
    printed comes out before the process ends without the interpreter's teardown; with a
    thread still working, or after anything but a finished run, the usual exit (which
    waits for the thread) with the same code."""
    import subprocess
    import sys
    code = ("import atexit, sys, threading, time\n"
            "from vectorstream.cli import run\n"
            "atexit.register(lambda: print('atexit ran', flush=False))\n"
            "class Torn:\n"
            "    def __del__(self):\n"
            "        print('torn down')\n"
            "kept = Torn()  # freed in the interpreter's teardown\n"
            "print('printed', end=' ')\n"
            "if 'thread' in sys.argv:\n"
            "    threading.Thread(target=lambda: (time.sleep(1), print('thread done'))).start()\n"
            "run.FINISHED = 'finished' in sys.argv\n"
            "run.exit_process(3)\n")
    for args, want in ((["finished"], ["printed atexit ran"]),
                       (["finished", "thread"], ["printed thread done", "atexit ran",
                                                 "torn down"]),
                       ([], ["printed atexit ran", "torn down"])):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 3 and proc.stdout.splitlines() == want, (args, proc)
