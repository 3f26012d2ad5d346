"""The hot path's elements are batches (one window's events, hundreds each). Beam samples
the size of the elements a step outputs for its byte counters (the first ten of every
bundle of a splittable read, then fewer), and its default coder measures a size by
pickling the element: here that pickled each batch two to three times more, ~10 % of a
run's CPU (docs/performance.md, lever 25). The batch types below get `BatchCoder`: pickled
as before, with a size estimated from a few of their items instead."""
from __future__ import annotations

import pickle

from apache_beam import coders


def estimate_size(value, depth: int = 0) -> int:
    """Bytes, roughly, without encoding: strings and buffers by length, arrays by
    `nbytes`, a sequence from up to four of its items, a record from its `raw` bytes."""
    if isinstance(value, (bytes, str)):
        return len(value)
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    raw = getattr(value, "raw", None)
    if isinstance(raw, (bytes, str)):
        return 2 * len(raw)  # the message and what it parsed into
    if isinstance(value, (list, tuple)) and depth < 3:
        if not value:
            return 8
        some = value[:4]
        return 8 + sum(estimate_size(v, depth + 1) for v in some) * len(value) // len(some)
    return 16


class BatchCoder(coders.Coder):
    """Pickles a batch as Beam's default coder does; estimates its size without that."""

    def encode(self, value):
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded):
        return pickle.loads(encoded)

    def estimate_size(self, value):
        return estimate_size(value)

    def is_deterministic(self):
        return False

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


class EventBatch(list):
    """One window's valid events (ParsedEvent), as validation outputs them."""
    __slots__ = ()


class TextsOfBatch(tuple):
    """(an EventBatch, the texts to embed): RunInference's keyed input."""
    __slots__ = ()


class VectorBatch(tuple):
    """(events, their vectors): what the sink writes."""
    __slots__ = ()


for _type in (EventBatch, TextsOfBatch, VectorBatch):
    coders.registry.register_coder(_type, BatchCoder)
