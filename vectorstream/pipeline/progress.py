"""A one-line progress summary while `vectorstream run` runs.

Beam's metrics (the `vectorstream` counters and distributions) are what runners report,
but a Python pipeline cannot read them back until it ends. So the DoFns also add to this
process-wide tally (`vectorstream.telemetry.TALLY`), which a reporter thread prints at a steady interval. It sees what runs
in this process: the DirectRunner (in memory). On Flink or Dataflow, read the runner's
metrics instead.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from vectorstream.telemetry import TALLY, Tally, percentile


class ProgressReporter(threading.Thread):
    def __init__(self, interval: float, out: TextIO = sys.stderr, tally: Tally = TALLY):
        super().__init__(name="vectorstream-progress", daemon=True)
        self._interval = interval
        self._out = out
        self._tally = tally
        self._stop = threading.Event()

    def line(self, previous: dict, counts: dict, latencies, elapsed: float) -> str:
        rate = (counts["read"] - previous.get("read", 0)) / max(elapsed, 1e-9)
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        lat = (f"event→stored p50 {p50:.2f}s p99 {p99:.2f}s" if p50 is not None
               else "event→stored -")
        return (f"progress: {rate:.0f} events/s | read {counts['read']} written "
                f"{counts['written']} invalid {counts['invalid']} dead {counts['dead']} "
                f"retries {counts['retries']} | {lat} (last {elapsed:.0f}s)")

    def run(self):
        previous: dict = {}
        last = time.time()
        while not self._stop.wait(self._interval):
            now = time.time()
            counts, latencies = self._tally.snapshot(last)
            print(self.line(previous, counts, latencies, now - last), file=self._out,
                  flush=True)
            previous, last = counts, now

    def stop(self):
        self._stop.set()
