"""The embedded backend: a Qdrant Edge shard on disk per collection (`--qdrant_path`),
written by one process at a time."""
from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, List, Optional

from vectorstream.io.store import (INDEXED_FIELDS, Hit, Point, Store, StoreError, _floats,
                                   _size_mismatch)

_LOG = logging.getLogger(__name__)


class EdgeStore(Store):
    """`read_only` stores (search, stats) fall back to a copy of a shard that another
    process (a running pipeline) holds: a point-in-time view, taken at open."""

    def __init__(self, path: str, read_only: bool = False):
        self.path = os.path.abspath(path)
        self.description = f"Qdrant Edge at {self.path}"
        self.read_only = read_only
        self.copied_from: Optional[str] = None
        self._copies: List[str] = []
        self._shards: Dict[str, Any] = {}
        self._lock = threading.Lock()

    def _shard_dir(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _open(self, name: str, dim: Optional[int] = None):
        import qdrant_edge as q
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        directory = self._shard_dir(name)
        exists = os.path.exists(os.path.join(directory, "edge_config.json"))
        try:
            if exists:
                shard = q.EdgeShard.load(directory)
            elif dim is None:
                raise StoreError(f"collection {name!r} does not exist in {self.path}: run the "
                                 f"pipeline first, or check --qdrant_path and --collection.")
            else:
                os.makedirs(directory, exist_ok=True)
                shard = q.EdgeShard.create(directory, q.EdgeConfig(
                    vectors=q.EdgeVectorParams(size=dim, distance=q.Distance.Cosine)))
        except StoreError:
            raise
        except Exception as exc:
            held = "WouldBlock" in str(exc) or "lock" in str(exc).lower()
            if held and self.read_only and exists:
                shard = self._open_copy(name, directory)
                self._shards[name] = shard
                return shard
            if held:
                raise StoreError(
                    f"the embedded Qdrant store {directory} is open in another process "
                    f"(a running pipeline?): stop it first, or run a Qdrant server and use "
                    f"--qdrant_url.") from None
            raise StoreError(f"cannot open the embedded Qdrant store {directory}: {exc}") from None
        self._shards[name] = shard
        return shard

    def _open_copy(self, name: str, directory: str):
        """Copies the held shard (segments and write-ahead log) and opens the copy."""
        import shutil
        import tempfile
        import qdrant_edge as q
        base = tempfile.mkdtemp(prefix="vectorstream-view-")
        self._copies.append(base)
        target = os.path.join(base, name)
        shutil.copytree(directory, target)
        self.copied_from = directory
        _LOG.info("%s is held by another process; reading a copy taken now", directory)
        return q.EdgeShard.load(target)

    def ensure_collection(self, name: str, dim: int) -> None:
        import qdrant_edge as q
        with self._lock:
            shard = self._open(name, dim)
            have = _edge_vector_size(self._shard_dir(name))
            if have is not None and have != dim:
                raise _size_mismatch(name, have, dim)
            kinds = {"keyword": q.PayloadSchemaType.Keyword,
                     "datetime": q.PayloadSchemaType.Datetime}
            for field, kind in INDEXED_FIELDS.items():
                shard.update(q.UpdateOperation.create_field_index(field, kinds[kind]))

    def upsert(self, name: str, points: List[Point]) -> None:
        import qdrant_edge as q
        shard = self._open(name)
        shard.update(q.UpdateOperation.upsert_points(
            [q.Point(p.id, _floats(p.vector), p.payload) for p in points]))

    def count(self, name: str) -> int:
        import qdrant_edge as q
        return self._open(name).count(q.CountRequest(exact=True))

    def payload_field(self, name, ids, field):
        records = self._open(name).retrieve(list(ids), with_payload=[field], with_vector=False)
        return {str(r.id): r.payload[field] for r in records if field in (r.payload or {})}

    def search(self, name, vector, limit=5, match=None):
        import qdrant_edge as q
        flt = _edge_filter(match)
        hits = self._open(name).query(q.QueryRequest(
            limit=limit, query=q.Query.Nearest(list(map(float, vector))), filter=flt,
            with_payload=True))
        return [Hit(str(h.id), float(h.score), dict(h.payload or {})) for h in hits]

    def scroll(self, name, batch=1000):
        import qdrant_edge as q
        shard = self._open(name)
        offset = None
        while True:
            records, offset = shard.scroll(q.ScrollRequest(limit=batch, offset=offset,
                                                          with_payload=True))
            for r in records:
                yield Hit(str(r.id), 1.0, dict(r.payload or {}))
            if offset is None:
                return

    def matching(self, name, match, limit=1000, with_vector=True):
        import qdrant_edge as q
        records, _ = self._open(name).scroll(q.ScrollRequest(
            limit=limit, filter=_edge_filter(match), with_payload=True,
            with_vector=with_vector))
        return [Hit(str(r.id), 1.0, dict(r.payload or {}), _edge_vector(r) if with_vector
                    else None) for r in records]

    def recommend(self, name, positives, negatives, limit, exclude=None):
        import qdrant_edge as q
        flt = None
        if exclude:
            flt = q.Filter(must_not=[q.FieldCondition(key=k, match=q.MatchAny(list(v)))
                                     for k, v in exclude.items() if v])
        hits = self._open(name).query(q.QueryRequest(
            limit=limit, query=q.Query.RecommendSumScores(q.RecommendQuery(
                [_floats(v) for v in positives], [_floats(v) for v in negatives])),
            filter=flt, with_payload=True))
        return [Hit(str(h.id), float(h.score), dict(h.payload or {})) for h in hits]

    def close(self) -> None:
        import shutil
        with self._lock:
            for shard in self._shards.values():
                try:
                    shard.flush()
                finally:
                    shard.close()
            self._shards.clear()
            for base in self._copies:
                shutil.rmtree(base, ignore_errors=True)
            self._copies.clear()


def _edge_filter(match: Optional[Dict[str, Any]]):
    import qdrant_edge as q
    if not match:
        return None
    return q.Filter(must=[q.FieldCondition(key=k, match=q.MatchValue(v))
                          for k, v in match.items()])


def _edge_vector(record) -> Optional[List[float]]:
    vector = record.vector
    if isinstance(vector, dict):  # {vector name: vector}: the unnamed one
        vector = next(iter(vector.values()), None)
    return list(vector) if vector is not None else None


def _edge_vector_size(directory: str) -> Optional[int]:
    import json
    try:
        with open(os.path.join(directory, "edge_config.json")) as fh:
            config = json.load(fh)
    except (OSError, ValueError):
        return None
    vectors = config.get("vectors") or config.get("vector_data") or {}
    for params in (vectors.values() if isinstance(vectors, dict) else []):
        if isinstance(params, dict) and "size" in params:
            return int(params["size"])
    return None
