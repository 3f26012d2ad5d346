"""Why the DirectRunner with several workers loses Kafka events (docs/performance.md, "The
DirectRunner's workers"): our reader alone, from a 4-partition topic, into one file per
worker process, with 1 or N workers, and with Beam's ParallelBundleManager patched to keep
every worker's residual roots (`--keep_residuals`, a diagnosis: the product refuses
`--direct_num_workers` above 1 instead).

    python docs/bench/direct_workers_loss.py --events 20000 --workers 2 [--mode multi_processing] [--keep_residuals]

Needs a broker at --bootstrap_servers (`vectorstream kafka start`).
"""
import argparse
import glob
import itertools
import os
import tempfile
import time
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from vectorstream.io.kafka_admin import ensure_topic
from vectorstream.io.kafka_source import KafkaSource, ReadEvents
from vectorstream.io.produce import generate, produce


def keep_residuals():
    """ParallelBundleManager.process_bundle as Beam 2.77 has it, but merging the workers'
    residual roots (the splittable reads' checkpoints) instead of dropping them."""
    from apache_beam.metrics import monitoring_infos
    from apache_beam.portability.api import beam_fn_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.utils import thread_pool_executor

    def process_bundle(self, inputs, expected_outputs, fired_timers, expected_output_timers,
                       dry_run=False):
        parts = [{} for _ in range(self._num_workers)]
        timers = [fired_timers if i == 0 else {} for i in range(self._num_workers)]
        for name, buffer in inputs.items():
            for i, part in enumerate(buffer.partition(self._num_workers)):
                parts[i][name] = part

        def execute(part_and_timers):
            manager = fn_runner.BundleManager(self.bundle_context_manager,
                                              self._progress_frequency,
                                              cache_token_generator=self._cache_token_generator)
            return manager.process_bundle(part_and_timers[0], expected_outputs,
                                          part_and_timers[1], expected_output_timers, dry_run)
        results, splits = [], []
        with thread_pool_executor.shared_unbounded_instance() as executor:
            for result, split in executor.map(execute, zip(parts, timers)):
                results.append(result)
                splits += split
        merged = beam_fn_api_pb2.InstructionResponse(
            process_bundle=beam_fn_api_pb2.ProcessBundleResponse(
                monitoring_infos=monitoring_infos.consolidate(itertools.chain(
                    *[r.process_bundle.monitoring_infos for r in results])),
                residual_roots=[root for r in results
                                for root in r.process_bundle.residual_roots]),
            error=next((r.error for r in results if r.error), ""))
        return merged, splits
    fn_runner.ParallelBundleManager.process_bundle = process_bundle


class AppendOffsets(beam.DoFn):
    def __init__(self, folder):
        self._folder = folder

    def setup(self):
        self._fh = open(os.path.join(self._folder, f"{os.getpid()}.txt"), "a")

    def process(self, batch):
        for message in batch:
            self._fh.write(f"{message.partition},{message.offset}\n")
        self._fh.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", default="multi_processing",
                        choices=("multi_processing", "multi_threading", "in_memory"))
    parser.add_argument("--keep_residuals", action="store_true")
    parser.add_argument("--bootstrap_servers", default="127.0.0.1:9092")
    args = parser.parse_args()
    if args.keep_residuals:
        keep_residuals()
    topic = f"workers-loss-{uuid.uuid4().hex[:6]}"
    ensure_topic(args.bootstrap_servers, topic, partitions=4)
    produce(args.bootstrap_servers, topic, list(generate(args.events, seed=1)))
    folder = tempfile.mkdtemp(prefix="workers-loss-")
    started = time.time()
    options = PipelineOptions(["--direct_running_mode", args.mode,
                               "--direct_num_workers", str(args.workers)])
    with beam.Pipeline(options=options) as pipeline:
        (pipeline
         | ReadEvents(KafkaSource(args.bootstrap_servers, topic, group=topic,
                                  max_num_records=args.events))
         | beam.Reshuffle()
         | beam.ParDo(AppendOffsets(folder)))
    read = set()
    for path in glob.glob(os.path.join(folder, "*.txt")):
        with open(path) as fh:
            read.update(line.strip() for line in fh)
    print(f"{args.events} events, {args.workers} worker(s) ({args.mode}"
          f"{', residual roots kept' if args.keep_residuals else ''}): {len(read)} read, "
          f"{time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
