"""The embedded backend: a Qdrant Edge shard on disk per collection (`--qdrant_path`),
written by one process at a time."""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, Dict, List, Optional

from vectorstream.io.store import (INDEXED_FIELDS, Hit, Point, Store, StoreError, Where,
                                   _floats, _size_mismatch)

_LOG = logging.getLogger(__name__)


class EdgeStore(Store):
    """`read_only` stores (search, stats) fall back to a copy of a shard that another
    process (a running pipeline) holds: a point-in-time view, taken at open."""

    embedded = True

    def __init__(self, path: str, read_only: bool = False):
        self.path = os.path.abspath(path)
        self.description = f"Qdrant Edge at {self.path}"
        self.read_only = read_only
        self.copied_from: Optional[str] = None
        self._copies: List[str] = []
        self._shards: Dict[str, Any] = {}
        self._locks: Dict[str, Any] = {}  # name: the open lock file held for its shard
        self._resolved: Dict[str, str] = {}
        # Calls in flight on a shard, counted so that close() waits for them: closing a shard
        # while another thread's call holds it fails with "Already borrowed" (a portable
        # runner's worker can still be in a bundle when the launcher closes the run's stores).
        self._lock = threading.Condition()
        self._in_flight = 0
        self._closing = False

    def _resolve(self, name: str) -> str:
        """The collection an alias of aliases.json stands for (io.versions)."""
        target = self._resolved.get(name)
        if target is None:
            from vectorstream.io.versions import _read_file
            target = (_read_file(self.path).get(name) or {}).get("current") or name
            self._resolved[name] = target
        return target

    def forget_resolved(self) -> None:
        self._resolved.clear()

    def _shard_dir(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _open(self, name: str, dim: Optional[int] = None):
        import qdrant_edge as q
        name = self._resolve(name)
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        directory = self._shard_dir(name)
        exists = os.path.exists(os.path.join(directory, "edge_config.json"))
        if not exists and dim is None:
            raise StoreError(f"collection {name!r} does not exist in {self.path}: run the "
                             f"pipeline first, or check --qdrant_path and --collection.")
        lock = self._hold(name)
        if lock is None and self.read_only:  # a writer has it: read a copy, never the shard
            return self._keep(name, self._open_copy(name, directory))
        if lock is None:
            raise _held(directory)
        try:
            if exists:
                shard = q.EdgeShard.load(directory)
            else:
                os.makedirs(directory, exist_ok=True)
                shard = q.EdgeShard.create(directory, q.EdgeConfig(
                    vectors=q.EdgeVectorParams(size=dim, distance=q.Distance.Cosine)))
        except Exception as exc:
            lock.close()
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():  # not one of ours
                if self.read_only and exists:
                    return self._keep(name, self._open_copy(name, directory))
                raise _held(directory)
            raise StoreError(f"cannot open the embedded Qdrant store {directory}: {exc}") from None
        self._locks[name] = lock
        return self._keep(name, shard)

    def _hold(self, name: str):
        """The lock beside a shard, taken before Qdrant Edge touches the shard: exclusive for
        a writer, shared for a reader; None when another holder's excludes it. Edge's own
        lock is on the write-ahead log, taken only after the segments are loaded, and a load
        it refuses there has already rewritten some of the holder's segment files: the
        holder's next flush failed ("tracker journal ... is shorter than expected") and
        points were lost. So no process of ours loads a shard another one holds."""
        import fcntl
        if not self.read_only:
            os.makedirs(self.path, exist_ok=True)
        try:
            handle = open(os.path.join(self.path, f".{name}.lock"), "a")
        except OSError as exc:  # a store a reader may not write: read copies
            if self.read_only:
                return None
            raise StoreError(f"cannot write the embedded Qdrant store {self.path}: {exc}") \
                from None
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if self.read_only else fcntl.LOCK_EX)
                        | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
        return handle

    def _keep(self, name: str, shard):
        self._shards[name] = shard
        return shard

    def _open_copy(self, name: str, directory: str):
        """Copies the held shard (segments and write-ahead log) and opens the copy; again,
        up to five times, when the holder changed it under the copy (a file gone, or a copy
        Edge cannot load)."""
        import shutil
        import tempfile
        import time
        import qdrant_edge as q
        for attempt in range(5):
            base = tempfile.mkdtemp(prefix="vectorstream-view-")
            target = os.path.join(base, name)
            try:
                shutil.copytree(directory, target, copy_function=_copy_if_there,
                                ignore=shutil.ignore_patterns(".atomicwrite*"))
                shard = q.EdgeShard.load(target)
            except Exception as exc:  # pylint: disable=broad-except
                failure = exc
                shutil.rmtree(base, ignore_errors=True)
                time.sleep(0.05 * (attempt + 1))
                continue
            self._copies.append(base)
            self.copied_from = directory
            _LOG.info("%s is held by another process; reading a copy taken now", directory)
            return shard
        raise StoreError(f"{directory} is held by another process and changed under every "
                         f"copy taken to read it ({failure}); try again")

    @contextlib.contextmanager
    def _use(self, name: str, dim: Optional[int] = None):
        """The collection's shard, opened if need be, counted in flight while in use."""
        with self._lock:
            self._lock.wait_for(lambda: not self._closing)
            shard = self._open(name, dim)
            self._in_flight += 1
        try:
            yield shard
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def ensure_collection(self, name: str, dim: int, indexes=None) -> None:
        import qdrant_edge as q
        with self._use(name, dim) as shard:
            have = _edge_vector_size(self._shard_dir(self._resolve(name)))
            if have is not None and have != dim:
                raise _size_mismatch(name, have, dim)
            kinds = {"keyword": q.PayloadSchemaType.Keyword,
                     "datetime": q.PayloadSchemaType.Datetime}
            for field, kind in (INDEXED_FIELDS if indexes is None else indexes).items():
                shard.update(q.UpdateOperation.create_field_index(field, kinds[kind]))

    def exists(self, name: str) -> bool:
        name = self._resolve(name)
        return name in self._shards or os.path.exists(
            os.path.join(self._shard_dir(name), "edge_config.json"))

    def vector_size(self, name):
        return _edge_vector_size(self._shard_dir(self._resolve(name)))

    def retrieve(self, name, ids, with_vector=False):
        with self._use(name) as shard:
            records = shard.retrieve(list(ids), with_payload=True, with_vector=with_vector)
        return [Hit(str(r.id), 1.0, dict(r.payload or {}),
                    _edge_vector(r) if with_vector else None) for r in records]

    def delete(self, name, ids):
        import qdrant_edge as q
        if ids:
            with self._use(name) as shard:
                shard.update(q.UpdateOperation.delete_points(list(ids)))

    def count_where(self, name, where):
        import qdrant_edge as q
        with self._use(name) as shard:
            return shard.count(q.CountRequest(exact=True, filter=_where(where)))

    def delete_where(self, name, where):
        import qdrant_edge as q
        flt = _where(where)
        with self._use(name) as shard:
            found = shard.count(q.CountRequest(exact=True, filter=flt))
            if found:
                shard.update(q.UpdateOperation.delete_points_by_filter(flt))
        return found

    def facet(self, name, key, where=None, limit=10_000):
        import qdrant_edge as q
        with self._use(name) as shard:
            response = shard.facet(q.FacetRequest(key, limit=limit, exact=True,
                                                  filter=_where(where)))
        return {hit.value: int(hit.count) for hit in response.hits}

    def latest(self, name, where, order_key, limit, with_vector=True):
        import qdrant_edge as q
        with self._use(name) as shard:
            records, _ = shard.scroll(q.ScrollRequest(
                limit=limit, filter=_where(where), with_payload=True, with_vector=with_vector,
                order_by=q.OrderBy(order_key, direction=q.Direction.Desc)))
        return [Hit(str(r.id), 1.0, dict(r.payload or {}),
                    _edge_vector(r) if with_vector else None) for r in records]

    def set_payload(self, name, ids, payload):
        import qdrant_edge as q
        if ids:
            with self._use(name) as shard:
                shard.update(q.UpdateOperation.set_payload(list(ids), payload))

    def upsert(self, name: str, points: List[Point]) -> None:
        import qdrant_edge as q
        batch = [q.Point(p.id, _floats(p.vector), p.payload) for p in points]
        with self._use(name) as shard:
            shard.update(q.UpdateOperation.upsert_points(batch))

    def count(self, name: str) -> int:
        import qdrant_edge as q
        with self._use(name) as shard:
            return shard.count(q.CountRequest(exact=True))

    def payload_field(self, name, ids, field):
        with self._use(name) as shard:
            records = shard.retrieve(list(ids), with_payload=[field], with_vector=False)
        return {str(r.id): r.payload[field] for r in records if field in (r.payload or {})}

    def search(self, name, vector, limit=5, match=None, where=None):
        import qdrant_edge as q
        flt = _where(Where.of(match, where))
        with self._use(name) as shard:
            hits = shard.query(q.QueryRequest(
                limit=limit, query=q.Query.Nearest(list(map(float, vector))), filter=flt,
                with_payload=True))
        return [Hit(str(h.id), float(h.score), dict(h.payload or {})) for h in hits]

    def scroll(self, name, batch=1000, where=None):
        import qdrant_edge as q
        offset, flt = None, _where(where)
        while True:
            with self._use(name) as shard:  # a page at a time: the caller may stop between
                records, offset = shard.scroll(q.ScrollRequest(
                    limit=batch, offset=offset, with_payload=True, filter=flt))
            for r in records:
                yield Hit(str(r.id), 1.0, dict(r.payload or {}))
            if offset is None:
                return

    def matching(self, name, match, limit=1000, with_vector=True):
        import qdrant_edge as q
        with self._use(name) as shard:
            records, _ = shard.scroll(q.ScrollRequest(
                limit=limit, filter=_where(Where(match=dict(match))), with_payload=True,
                with_vector=with_vector))
        return [Hit(str(r.id), 1.0, dict(r.payload or {}), _edge_vector(r) if with_vector
                    else None) for r in records]

    def recommend(self, name, positives, negatives, limit, exclude=None):
        import qdrant_edge as q
        flt = None
        if exclude:
            flt = q.Filter(must_not=[q.FieldCondition(key=k, match=q.MatchAny(list(v)))
                                     for k, v in exclude.items() if v])
        with self._use(name) as shard:
            hits = shard.query(q.QueryRequest(
                limit=limit, query=q.Query.RecommendSumScores(q.RecommendQuery(
                    [_floats(v) for v in positives], [_floats(v) for v in negatives])),
                filter=flt, with_payload=True))
        return [Hit(str(h.id), float(h.score), dict(h.payload or {})) for h in hits]

    def close(self, wait_seconds: float = 60.0) -> None:
        """Flushes and closes every shard once the calls in flight on them have returned
        (for up to `wait_seconds`; new calls wait for the close, then reopen)."""
        import shutil
        with self._lock:
            self._closing = True
            try:
                if not self._lock.wait_for(lambda: self._in_flight == 0, timeout=wait_seconds):
                    _LOG.warning("%s: %d calls still in flight after %.0f s; closing anyway",
                                 self.description, self._in_flight, wait_seconds)
                for shard in self._shards.values():
                    try:
                        shard.flush()
                    finally:
                        shard.close()
                self._shards.clear()
                for handle in self._locks.values():  # closing the file releases its lock
                    handle.close()
                self._locks.clear()
                for base in self._copies:
                    shutil.rmtree(base, ignore_errors=True)
                self._copies.clear()
            finally:
                self._closing = False
                self._lock.notify_all()


def _copy_if_there(source: str, target: str) -> None:
    """A file the holder removed while the copy ran (a rotated log) is not copied."""
    import shutil
    try:
        shutil.copy2(source, target)
    except FileNotFoundError:
        pass


def _held(directory: str) -> StoreError:
    return StoreError(f"the embedded Qdrant store {directory} is open in another process "
                      f"(a running pipeline, or a search, stats or serve reading it): stop "
                      f"it first, or run a Qdrant server and use --qdrant_url.")


def _where(where: Optional[Where]):
    import qdrant_edge as q
    if not where:
        return None
    must = [q.FieldCondition(key=k, match=q.MatchValue(v)) for k, v in where.match.items()]
    must += [q.FieldCondition(key=k, match=q.MatchAny(list(v))) for k, v in where.any.items()]
    if where.before:
        must.append(q.FieldCondition(key=where.before[0],
                                     range=q.RangeDateTime(lt=where.before[1])))
    if where.since:
        must.append(q.FieldCondition(key=where.since[0],
                                     range=q.RangeDateTime(gte=where.since[1])))
    must_not = [q.FieldCondition(key=k, match=q.MatchAny(list(v)))
                for k, v in where.not_any.items() if v]
    if where.not_ids:
        must_not.append(q.HasIdCondition(set(where.not_ids)))
    return q.Filter(must=must or None, must_not=must_not or None)


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
