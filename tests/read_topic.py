"""Reads a topic with one of the two Kafka readers on the PrismRunner and writes each
record as repr((partition, offset, key, value, timestamp_ms)), one a line.

Run by tests/test_runners.py in a process of its own: Beam keeps a started Prism for the
process, and later DirectRunner tests would otherwise run on it.

    python tests/read_topic.py BOOTSTRAP TOPIC GROUP COUNT python|java PRISM OUT
"""
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.subprocess_server import SubprocessServer

from vectorstream.io.kafka_source import KafkaSource, ReadEvents
from vectorstream.runners.kafkaio import ReadEventsWithKafkaIO


class AppendLines(beam.DoFn):
    """Appends each element as a line to a file (LOOPBACK: this process writes it); the
    reader's output is unbounded, which Beam's WriteToText will not take un-windowed."""

    def __init__(self, path):
        self._path = path

    def process(self, line):
        with open(self._path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def main(bootstrap, topic, group, count, reader, prism, out):
    source = KafkaSource(bootstrap, topic, group=group, max_num_records=int(count))
    options = PipelineOptions(["--runner=PrismRunner", f"--prism_location={prism}"])
    # The Java reader runs in its expansion service's JVM on Prism, kept for the whole run.
    with SubprocessServer.cache_subprocesses(), beam.Pipeline(options=options) as p:
        read = ReadEvents(source) if reader == "python" else ReadEventsWithKafkaIO(source)
        (p | read
         | beam.FlatMap(lambda batch: batch)
         | beam.Map(lambda m: repr((m.partition, m.offset, m.key, m.value, m.timestamp_ms)))
         | beam.ParDo(AppendLines(out)))


if __name__ == "__main__":
    main(*sys.argv[1:])
