"""Flags: defaults, refusals with one readable message, and the CLI's exit codes."""
import subprocess
import sys

import pytest

from vectorstream.config.options import UsageError, VectorStreamOptions, parse_options


def test_defaults():
    vs = parse_options([]).view_as(VectorStreamOptions)
    assert vs.bootstrap() == "localhost:9092"
    assert vs.topic == "ecommerce-events"
    assert vs.dead_letter_topic_name() == "ecommerce-events.dlq"
    assert vs.window_seconds == 10.0
    assert vs.qdrant_path == "./data/qdrant" and vs.qdrant_url is None
    assert vs.collection == "ecommerce_events"


@pytest.mark.parametrize("argv, message", [
    (["--windw_seconds", "5"], "unknown flag(s): --windw_seconds"),
    (["--window_seconds", "0"], "--window_seconds: must be a positive number"),
    (["--max_num_records", "-3"], "--max_num_records: must be a positive integer"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
    (["--start_from", "middle"], "invalid choice: 'middle'"),
    (["--qdrant_url", "http://q:6333", "--qdrant_path", "/tmp/x"], "both given"),
    (["--topic", "a", "--dead_letter_topic", "a"], "must differ from --topic"),
])
def test_bad_flags_are_refused(argv, message):
    with pytest.raises(UsageError) as err:
        parse_options(argv)
    assert message in str(err.value)


def run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vectorstream", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_cli_bad_flag_is_one_line_not_a_traceback():
    proc = run_cli("run", "--windw_seconds", "5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "vectorstream: error: unknown flag(s): --windw_seconds 5; "
        "`vectorstream run --help` lists the flags"]


def test_cli_unreachable_kafka_says_what_to_do(tmp_path):
    proc = run_cli("run", "--bootstrap_servers", "127.0.0.1:1", "--qdrant_path",
                   str(tmp_path / "q"), "--max_num_records", "1")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "Kafka at 127.0.0.1:1 is not reachable" in proc.stderr
    assert "vectorstream kafka start" in proc.stderr


def test_cli_bad_model_path(tmp_path):
    proc = run_cli("run", "--model", str(tmp_path / "nothing"), "--max_num_records", "1")
    assert proc.returncode == 2
    assert "is not a sentence-transformers model directory" in proc.stderr


def test_run_help_lists_the_flags():
    proc = run_cli("run", "--help")
    assert proc.returncode == 0
    for flag in ("--bootstrap_servers", "--topic", "--consumer_group", "--start_from",
                 "--max_num_records", "--max_read_time", "--window_seconds", "--model",
                 "--device", "--inference_batch_size", "--qdrant_url", "--qdrant_path",
                 "--collection", "--dead_letter_topic"):
        assert flag in proc.stdout


def test_secrets_only_by_reference():
    with pytest.raises(UsageError, match="must not be given inline"):
        parse_options(["--kafka_config", "sasl.password=hunter2"])
    extra = parse_options(["--kafka_config", "sasl.password=env:X", "--kafka_config",
                           "client.id=vs"]).view_as(VectorStreamOptions).kafka_extra()
    assert extra == {"sasl.password": "env:X", "client.id": "vs"}


def test_docs_flags_md_is_generated_from_the_options():
    """docs/flags.md is `python -m vectorstream.config.options` output: it never drifts."""
    import pathlib
    from vectorstream.config.options import flags_markdown
    doc = pathlib.Path(__file__).resolve().parent.parent / "docs" / "flags.md"
    assert doc.read_text() == flags_markdown(), \
        "regenerate it: python -m vectorstream.config.options > docs/flags.md"


def test_run_explain_prints_the_plan_and_runs_nothing():
    proc = run_cli("run", "--explain", "--preset", "flink", "--qdrant_url",
                   "http://127.0.0.1:6333")
    assert proc.returncode == 0, proc.stderr
    for line in ("runner", "FlinkRunner at localhost:8081", "java (Beam's KafkaIO)",
                 "EMBEDDED", "the worker pool at localhost:50000",
                 "Qdrant server http://127.0.0.1:6333", "finish bundle before checkpointing True",
                 "why:"):
        assert line in proc.stdout, proc.stdout
