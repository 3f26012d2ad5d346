"""Qdrant behind one small interface, with two backends.

- `EdgeStore`: an embedded Qdrant Edge shard on disk (`--qdrant_path`); one shard
  directory per collection, `<qdrant_path>/<collection>`. One process at a time.
- `ServerStore`: a Qdrant server through qdrant-client (`--qdrant_url http(s)://…`, API key
  from QDRANT_API_KEY), or qdrant-client's local mode (`--qdrant_url local://DIR`).

Both create the collection when missing (cosine distance, the model's dimension), refuse
a collection whose vector size differs, and index the payload fields people filter on.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence

_LOG = logging.getLogger(__name__)

# Payload fields with an index, and their types.
INDEXED_FIELDS = {
    "event_type": "keyword",
    "user_id": "keyword",
    "product.category": "keyword",
    "timestamp": "datetime",
}


class StoreError(RuntimeError):
    """A store problem the user must fix; the message says what to do."""


@dataclass
class Point:
    id: str
    vector: Sequence[float]
    payload: Dict[str, Any]
    window: Any = None  # the Beam window it came from (the sink's dead letters go there)
    raw: Optional[bytes] = None  # the Kafka message it came from (a dead letter's original)


@dataclass
class Hit:
    id: str
    score: float
    payload: Dict[str, Any]
    vector: Optional[List[float]] = None


class Store:
    """What the pipeline and the CLI need from Qdrant."""

    description: str

    def ensure_collection(self, name: str, dim: int) -> None:
        raise NotImplementedError

    def upsert(self, name: str, points: List[Point]) -> None:
        raise NotImplementedError

    def count(self, name: str) -> int:
        raise NotImplementedError

    def payload_field(self, name: str, ids: List[str], field: str) -> Dict[str, Any]:
        """{id: payload[field]} for the ids that exist and have the field."""
        raise NotImplementedError

    def search(self, name: str, vector: Sequence[float], limit: int = 5,
               match: Optional[Dict[str, Any]] = None) -> List[Hit]:
        raise NotImplementedError

    def scroll(self, name: str, batch: int = 1000) -> Iterator[Hit]:
        raise NotImplementedError

    def matching(self, name: str, match: Dict[str, Any], limit: int = 1000,
                 with_vector: bool = True) -> List[Hit]:
        """Points whose payload matches `match` exactly (a user's events, a product's)."""
        raise NotImplementedError

    def recommend(self, name: str, positives: Sequence[Sequence[float]],
                  negatives: Sequence[Sequence[float]], limit: int,
                  exclude: Optional[Dict[str, List[Any]]] = None) -> List[Hit]:
        """Qdrant's recommend query, `sum_scores` strategy (a point's score: the sum of its
        similarities to the positives less those to the negatives, so an example given
        twice counts twice), without the points whose payload field holds any of
        `exclude`'s values."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def _floats(vector) -> List[float]:
    """A list of Python floats; numpy's tolist() does it in C (the model returns arrays)."""
    tolist = getattr(vector, "tolist", None)
    return tolist() if tolist is not None else [float(x) for x in vector]


def _size_mismatch(name: str, have: int, want: int) -> StoreError:
    return StoreError(
        f"collection {name!r} holds vectors of size {have}, but the model makes vectors of "
        f"size {want}: use another --collection, or the model the collection was built with.")


# ---------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------

class QdrantHTTPError(RuntimeError):
    """A Qdrant server's HTTP error answer (status_code and headers, as the sink's
    retry rules read them)."""

    def __init__(self, status_code: int, headers, text: str):
        super().__init__(f"Qdrant answered HTTP {status_code}: {text[:300]}")
        self.status_code = status_code
        self.headers = headers


class ServerStore(Store):
    """A Qdrant server through qdrant-client (collections, search, scroll) with upserts and
    the sink's look-ups sent without qdrant-client's per-point pydantic models: raw gRPC
    messages (`grpc`, the default) or a REST body serialised in one orjson call."""

    def __init__(self, url: str, api_key: Optional[str] = None, timeout: float = 30.0,
                 grpc: bool = True):
        from qdrant_client import QdrantClient
        self._timeout = timeout
        self._http = None
        if url.startswith("local://"):
            path = url[len("local://"):]
            self.description = f"qdrant-client local mode at {os.path.abspath(path)}"
            self._local, self._grpc = True, False
            try:
                self.client = QdrantClient(path=path)
            except RuntimeError as exc:
                raise StoreError(str(exc)) from None
        else:
            self._local, self._grpc = False, grpc
            self.description = f"Qdrant server at {url}{' (gRPC)' if grpc else ''}"
            self.client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout),
                                       prefer_grpc=grpc)
            if not grpc:
                import httpx
                headers = {"content-type": "application/json"}
                if api_key:
                    headers["api-key"] = api_key
                self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers,
                                          timeout=timeout)

    def ensure_collection(self, name: str, dim: int) -> None:
        from qdrant_client import models
        try:
            exists = self.client.collection_exists(name)
        except Exception as exc:
            raise StoreError(f"{self.description} is not reachable ({exc}): start it, or check "
                             f"--qdrant_url and QDRANT_API_KEY.") from None
        if not exists:
            self.client.create_collection(name, vectors_config=models.VectorParams(
                size=dim, distance=models.Distance.COSINE))
        else:
            params = self.client.get_collection(name).config.params.vectors
            have = getattr(params, "size", None)
            if have is not None and have != dim:
                raise _size_mismatch(name, have, dim)
        if not self._local:  # local mode has no payload indexes (it warns and ignores them)
            kinds = {"keyword": models.PayloadSchemaType.KEYWORD,
                     "datetime": models.PayloadSchemaType.DATETIME}
            for field, kind in INDEXED_FIELDS.items():
                self.client.create_payload_index(name, field, kinds[kind])

    def upsert(self, name, points):
        if self._grpc:
            from qdrant_client import grpc as qgrpc
            from qdrant_client.conversions.conversion import payload_to_grpc
            # Built in place from nested arguments (protobuf makes the whole tree at once;
            # constructing each message and copying it into its parent costs twice this).
            request = qgrpc.UpsertPoints(collection_name=name, wait=True)
            add = request.points.add
            for p in points:
                add(id={"uuid": p.id}, vectors={"vector": {"data": _floats(p.vector)}},
                    payload=payload_to_grpc(p.payload))
            self.client.grpc_points.Upsert(request, timeout=self._timeout)
        elif self._http is not None:
            import orjson
            body = orjson.dumps({"points": [{"id": p.id, "vector": p.vector,
                                             "payload": p.payload} for p in points]},
                                option=orjson.OPT_SERIALIZE_NUMPY)
            self._request("PUT", f"/collections/{name}/points?wait=true", body)
        else:
            from qdrant_client import models
            self.client.upsert(name, points=[
                models.PointStruct(id=p.id, vector=_floats(p.vector), payload=p.payload)
                for p in points], wait=True)

    def _request(self, method: str, path: str, body: bytes):
        import orjson
        response = self._http.request(method, path, content=body)
        if response.status_code >= 400:
            raise QdrantHTTPError(response.status_code, response.headers, response.text)
        return orjson.loads(response.content)["result"]

    def count(self, name):
        return self.client.count(name, exact=True).count

    def payload_field(self, name, ids, field):
        if self._grpc:
            from qdrant_client import grpc as qgrpc
            from qdrant_client.conversions.conversion import value_to_json
            response = self.client.grpc_points.Get(qgrpc.GetPoints(
                collection_name=name, ids=[qgrpc.PointId(uuid=i) for i in ids],
                with_payload=qgrpc.WithPayloadSelector(
                    include=qgrpc.PayloadIncludeSelector(fields=[field])),
                with_vectors=qgrpc.WithVectorsSelector(enable=False)), timeout=self._timeout)
            return {r.id.uuid: value_to_json(r.payload[field]) for r in response.result
                    if field in r.payload}
        if self._http is not None:
            import orjson
            records = self._request("POST", f"/collections/{name}/points", orjson.dumps(
                {"ids": list(ids), "with_payload": [field], "with_vector": False}))
            return {str(r["id"]): r["payload"][field] for r in records
                    if field in (r.get("payload") or {})}
        records = self.client.retrieve(name, ids=list(ids), with_payload=[field],
                                       with_vectors=False)
        return {str(r.id): r.payload[field] for r in records if field in (r.payload or {})}

    def search(self, name, vector, limit=5, match=None):
        from qdrant_client import models
        flt = None
        if match:
            flt = models.Filter(must=[models.FieldCondition(key=k, match=models.MatchValue(value=v))
                                      for k, v in match.items()])
        result = self.client.query_points(name, query=list(map(float, vector)), limit=limit,
                                          query_filter=flt, with_payload=True)
        return [Hit(str(h.id), float(h.score), dict(h.payload or {})) for h in result.points]

    def matching(self, name, match, limit=1000, with_vector=True):
        from qdrant_client import models
        records, _ = self.client.scroll(name, limit=limit, with_payload=True,
                                        with_vectors=with_vector, scroll_filter=models.Filter(
                                            must=[models.FieldCondition(
                                                key=k, match=models.MatchValue(value=v))
                                                for k, v in match.items()]))
        return [Hit(str(r.id), 1.0, dict(r.payload or {}),
                    list(r.vector) if with_vector and r.vector is not None else None)
                for r in records]

    def recommend(self, name, positives, negatives, limit, exclude=None):
        from qdrant_client import models
        flt = None
        if exclude:
            flt = models.Filter(must_not=[models.FieldCondition(
                key=k, match=models.MatchAny(any=list(v))) for k, v in exclude.items() if v])
        result = self.client.query_points(
            name, query=models.RecommendQuery(recommend=models.RecommendInput(
                positive=[_floats(v) for v in positives],
                negative=[_floats(v) for v in negatives],
                strategy=models.RecommendStrategy.SUM_SCORES)),
            query_filter=flt, limit=limit, with_payload=True)
        return [Hit(str(h.id), float(h.score), dict(h.payload or {})) for h in result.points]

    def scroll(self, name, batch=1000):
        offset = None
        while True:
            records, offset = self.client.scroll(name, limit=batch, offset=offset,
                                                 with_payload=True)
            for r in records:
                yield Hit(str(r.id), 1.0, dict(r.payload or {}))
            if offset is None:
                return

    def close(self):
        if self._http is not None:
            self._http.close()
        self.client.close()


def qdrant_api_key() -> Optional[str]:
    """The API key, from QDRANT_API_KEY or the file QDRANT_API_KEY_FILE names; never a flag."""
    if os.environ.get("QDRANT_API_KEY"):
        return os.environ["QDRANT_API_KEY"]
    path = os.environ.get("QDRANT_API_KEY_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise StoreError(f"QDRANT_API_KEY_FILE {path} cannot be read ({exc.strerror})") from None
    return None


def open_store(url: Optional[str] = None, path: Optional[str] = None,
               read_only: bool = False, grpc: bool = True) -> Store:
    """The store the flags name: --qdrant_url wins when given, else --qdrant_path.
    `read_only` (search, stats) may read a copy of an embedded store a pipeline holds;
    `grpc` picks gRPC over REST for a server's upserts."""
    if url:
        return ServerStore(url, api_key=qdrant_api_key(), grpc=grpc)
    if not path:
        raise StoreError("no Qdrant store given: set --qdrant_path DIR or --qdrant_url URL.")
    return EdgeStore(path, read_only=read_only)
