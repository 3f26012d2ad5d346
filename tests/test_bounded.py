"""Bounded runs always end, on uneven partitions too.

A 4-partition topic skewed 20:1 between its fullest and emptiest partition, with an empty
one besides (400 / 20 / 0 / 180 records, 5 % malformed), read with `--ending_offsets
latest` (each partition up to its end offset at the start, then the run ends: records
produced after the start are not read) on the DirectRunner, Prism and the Flink
mini-cluster, with both readers where the runner runs them. And the set-up that hung for
ever before: `--max_num_records` with Beam's KafkaIO on Flink over partitions holding
10,000 and 500 records (KafkaIO split the bound into two equal shares, and the reader of
500 waited for its 5,250 for ever). Every run: each valid event stored once, each
malformed one dead-lettered, every offset committed.
"""
import pytest

from conftest import run_end_to_end
from test_runners import _built
from vectorstream.config.options import UsageError

SKEWED = [400, 20, 0, 180]


def _past_the_end(offsets):
    """Records produced once the run is going: past its end offsets, never read."""
    from vectorstream.io.produce import generate, produce
    produce(offsets.bootstrap, offsets.topic,
            [m for m in generate(30, seed=77) if m[2] is not None], partition=0)


def _ending(kafka, tmp_path, flags, **kwargs):
    return run_end_to_end(kafka, tmp_path, flags, bounded=True, layout=SKEWED,
                          bound_flags=["--ending_offsets", "latest"], **kwargs)


def test_ending_offsets_on_the_direct_runner_reads_each_partition_to_its_end(kafka, tmp_path):
    _ending(kafka, tmp_path, ["--preset", "direct"], on_started=_past_the_end)


@pytest.mark.parametrize("reader", ["python", "java"])
def test_ending_offsets_on_prism(kafka, tmp_path, reader):
    from vectorstream.runners import java, prism
    _built(prism.prism_binary)
    if reader == "java":
        _built(java.kafka_expansion_service_jar)
    _ending(kafka, tmp_path, ["--preset", "prism", "--kafka_reader", reader],
            on_started=_past_the_end if reader == "python" else None)


@pytest.mark.parametrize("reader", ["python", "java"])
def test_ending_offsets_on_the_flink_mini_cluster(kafka, tmp_path, reader):
    """The Java reader's job streams and the launcher ends it once the committed offsets
    reach the end offsets of the start (records read past them before the cancel would be
    stored too, so none are produced during the Java run)."""
    from vectorstream.runners import java
    _built(java.flink_job_server_jar)
    if reader == "java":
        _built(java.kafka_expansion_service_jar)
    output = _ending(kafka, tmp_path, ["--preset", "flink-local", "--kafka_reader", reader,
                                       "--checkpointing_interval", "2000"],
                     on_started=_past_the_end if reader == "python" else None)
    if reader == "java":
        assert "the bound is reached (--ending_offsets latest" in output


def test_a_record_bound_with_kafkaio_on_uneven_partitions_ends(kafka, tmp_path):
    """`--max_num_records 10500` over partitions of 10,000 and 500 records with the Java
    reader on Flink: KafkaIO's own bound would give each of two readers 5,250 and one
    would wait for ever (5,000 of 10,000 stored, then 0 % CPU, before); kept by the
    launcher, the run ends with all of them."""
    from vectorstream.runners import java
    _built(java.flink_job_server_jar)
    _built(java.kafka_expansion_service_jar)
    output = run_end_to_end(kafka, tmp_path, ["--preset", "flink-local",
                                              "--checkpointing_interval", "2000"],
                            bounded=True, layout=[10_000, 500, 0, 0])
    assert "the bound is reached (--max_num_records 10500" in output


def test_kafkaio_bounding_itself_on_uneven_partitions_is_refused_in_one_line():
    """Where KafkaIO bounds the read itself (Prism), a bound its equal shares cannot
    reach is refused, not left to hang."""
    from vectorstream.io.kafka_admin import TopicOffsets
    from vectorstream.runners.kafkaio import kafkaio_record_bound
    uneven = TopicOffsets(start={0: 0, 1: 0, 2: 0, 3: 0}, end={0: 10_000, 1: 500, 2: 0, 3: 0})
    with pytest.raises(UsageError, match="would never end: it splits 10500 records over 2 "
                                         "readers \\(5250 each\\) and reader 1's partitions "
                                         "hold 500"):
        kafkaio_record_bound(uneven, None)
    small = TopicOffsets(start={0: 0, 1: 0, 2: 0, 3: 0}, end=dict(enumerate(SKEWED)))
    assert kafkaio_record_bound(small, None) == 600  # one reader reads all of them
    assert kafkaio_record_bound(small, 100) == 100
    with pytest.raises(UsageError, match="nothing to read"):
        kafkaio_record_bound(TopicOffsets(start={0: 5}, end={0: 5}), None)
