"""What every writer of ours shares: one store a process (an embedded shard may be opened
once only), and Beam's retries of transient store failures within --write_retry_seconds."""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from apache_beam.utils.retry import FuzzedExponentialIntervals

from vectorstream import telemetry
from vectorstream.io.qdrant import Store, open_store
from vectorstream.io.store import is_transient, retry_after_seconds

_LOG = logging.getLogger(__name__)

_STORES: Dict[Tuple, List] = {}  # key -> [store, users]
_STORES_LOCK = threading.Lock()



def acquire_store(url: Optional[str], path: Optional[str],
                  opener: Callable[..., Store] = open_store, grpc: bool = True,
                  grpc_port: Optional[int] = None) -> Store:
    with _STORES_LOCK:
        key = (url, path, opener, grpc, grpc_port)
        entry = _STORES.get(key)
        if entry is None:
            # (a gRPC port is passed only when set: tests' openers take the three others)
            extra = {"grpc_port": grpc_port} if grpc_port is not None else {}
            entry = _STORES[key] = [opener(url=url, path=path, grpc=grpc, **extra), 0]
        entry[1] += 1
        return entry[0]


def release_store(url: Optional[str], path: Optional[str],
                  opener: Callable[..., Store] = open_store, grpc: bool = True,
                  grpc_port: Optional[int] = None) -> None:
    with _STORES_LOCK:
        key = (url, path, opener, grpc, grpc_port)
        entry = _STORES.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _STORES[key]
            entry[0].close()


def close_all_stores() -> None:
    """Closes every store this process opened for sinks. For after a run has finished:
    portable runners (Prism, Flink LOOPBACK) tear the DoFns down later, or not at all,
    and an embedded store stays locked until closed."""
    with _STORES_LOCK:
        entries = list(_STORES.values())
        _STORES.clear()
    for store, _users in entries:
        store.close()


class WriteFailed(RuntimeError):
    """Qdrant kept failing with transient errors for longer than the retry budget."""


def with_retries(call, description: str, retry_seconds: float,
                 retries: Optional[List[int]] = None, n_points: int = 0):
    """One store call, retried with Beam's FuzzedExponentialIntervals (0.2 s doubling to
    10 s, jitter, Retry-After honoured) while the failure is transient and the budget
    (--write_retry_seconds) lasts; then WriteFailed, which fails the bundle."""
    delays = iter(FuzzedExponentialIntervals(0.2, 10000, max_delay_secs=10.0,
                                             stop_after_secs=retry_seconds))
    started = time.monotonic()
    while True:
        try:
            return call()
        except Exception as exc:  # pylint: disable=broad-except
            if not is_transient(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                raise WriteFailed(
                    f"Qdrant ({description}) kept failing for "
                    f"{time.monotonic() - started:.0f}s (--write_retry_seconds "
                    f"{retry_seconds:g}): {exc}") from exc
            delay = max(delay, retry_after_seconds(exc) or 0.0)
            if retries is not None:
                retries[0] += 1
            telemetry.write_retried(exc)
            _LOG.warning("Qdrant call failed (%s), retrying (%d points) in %.1fs",
                         exc, n_points, delay)
            time.sleep(delay)
