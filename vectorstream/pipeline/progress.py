"""A one-line progress summary while `vectorstream run` runs.

Beam's metrics (the `vectorstream` counters and distributions) are what runners report,
but a Python pipeline cannot read them back until it ends. So the DoFns also add to this
process-wide tally, which a reporter thread prints at a steady interval. It sees what runs
in this process: the DirectRunner (in memory). On Flink or Dataflow, read the runner's
metrics instead.
"""
from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from typing import Deque, Optional, TextIO, Tuple

_LOG = logging.getLogger(__name__)


class Tally:
    FIELDS = ("read", "invalid", "written", "dead", "retries")

    def __init__(self, window_seconds: float = 60.0):
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(self.FIELDS, 0)
        self._latencies: Deque[Tuple[float, float]] = collections.deque()
        self._window = window_seconds
        self.listener = None  # called with (time, latencies): the benchmark keeps them all

    def add(self, field: str, n: int = 1) -> None:
        with self._lock:
            self._counts[field] += n

    def latencies(self, values, now: Optional[float] = None) -> None:
        now = now or time.time()
        if self.listener is not None:
            self.listener(now, values)
        with self._lock:
            self._latencies.extend((now, v) for v in values)
            while self._latencies and self._latencies[0][0] < now - self._window:
                self._latencies.popleft()
            while len(self._latencies) > 100_000:  # bounded memory at any rate
                self._latencies.popleft()

    def snapshot(self, since: float):
        with self._lock:
            recent = sorted(v for t, v in self._latencies if t >= since)
            return dict(self._counts), recent


TALLY = Tally()


def percentile(ordered, q: float):
    """Nearest-rank percentile of already sorted values; None when there are none."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q / 100 * (len(ordered) - 1) + 0.5))]


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
