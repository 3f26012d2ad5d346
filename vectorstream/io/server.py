"""The server backend: a Qdrant server through qdrant-client (or its local mode), with
upserts and the sink's look-ups sent without qdrant-client's per-point pydantic models."""
from __future__ import annotations

import os
import threading
from typing import Optional

from vectorstream.io.rest import QdrantHTTPError, filter_json
from vectorstream.io.store import (FILTER_ONLY_FIELDS, INDEXED_FIELDS, Hit, Store, StoreError,
                                   Where, _floats, _size_mismatch)


QDRANT_REST_PORT, QDRANT_GRPC_PORT = 6333, 6334
QDRANT_INDEXING_THRESHOLD = 10_000  # kB, the server's default (optimizers.indexing_threshold)
# The collection metadata key that holds the indexing threshold a backfill turned off.
DEFERRED_KEY = "vectorstream_deferred_indexing_threshold"


def grpc_port_for(url: str, given: Optional[int] = None) -> int:
    """The gRPC port of the server at `url`: `given` (--qdrant_grpc_port), or Qdrant's
    default 6334 when the URL is on Qdrant's default port 6333 (or names none). A server
    on another port has its gRPC port elsewhere too, and guessing would write to another
    server: refused, saying what to give."""
    from urllib.parse import urlparse
    if given is not None:
        if not 0 < given < 65536:
            raise StoreError(f"--qdrant_grpc_port must be a port number, not {given}")
        return given
    try:
        port = urlparse(url).port
    except ValueError:
        raise StoreError(f"--qdrant_url {url!r} has no valid port: give "
                         f"http(s)://HOST:PORT") from None
    if port in (None, QDRANT_REST_PORT):
        return QDRANT_GRPC_PORT
    raise StoreError(f"--qdrant_url {url} is not on Qdrant's default port "
                     f"{QDRANT_REST_PORT}, so its gRPC port cannot be guessed: give "
                     f"--qdrant_grpc_port PORT (the server's service.grpc_port), or "
                     f"--qdrant_grpc off to use REST only")


def _index_schema(kind: str, graph: bool):
    """A payload index of `kind` (keyword, datetime), as REST's field_schema; without
    `graph`, one that serves filters alone (no extra HNSW links). Creating it again as it
    is costs nothing; with other parameters, the server rebuilds it once."""
    return kind if graph else {"type": kind, "enable_hnsw": False}


class ServerStore(Store):
    """A Qdrant server through qdrant-client (collections, search, scroll) with upserts and
    the sink's look-ups sent without qdrant-client's per-point pydantic models: protobuf's
    wire bytes over gRPC (`grpc`, the default: io/grpc_wire.py) or a REST body serialised in
    one orjson call. A run's checks (the collection, its indexes, alias and indexing
    threshold) go over REST (io/rest.py), so a run that writes only events never imports
    qdrant-client (lever 34); `client` is made on first use."""

    def __init__(self, url: str, api_key: Optional[str] = None, timeout: float = 30.0,
                 grpc: bool = True, grpc_port: Optional[int] = None):
        self._timeout = timeout
        self._http = self._points = self.rest = self._client = None
        self._client_lock = threading.Lock()
        if url.startswith("local://"):
            from qdrant_client import QdrantClient
            path = url[len("local://"):]
            self.description = f"qdrant-client local mode at {os.path.abspath(path)}"
            self._local = True
            try:
                self._client = QdrantClient(path=path)
            except RuntimeError as exc:
                raise StoreError(str(exc)) from None
            return
        from vectorstream.io.rest import RestClient
        self._local = False
        # REST alone never opens a gRPC channel: the port matters only with gRPC.
        port = grpc_port_for(url, grpc_port) if grpc else (grpc_port or QDRANT_GRPC_PORT)
        self.description = f"Qdrant server at {url}" + (f" (gRPC port {port})" if grpc
                                                        else " (REST)")
        self._client_args = {"url": url, "api_key": api_key, "timeout": int(timeout),
                             "prefer_grpc": grpc, "grpc_port": port}
        self.rest = RestClient(url, api_key=api_key, timeout=timeout)
        if grpc:
            from vectorstream.io.grpc_wire import PointsChannel
            self._points = PointsChannel(url, port, api_key)
        else:
            import httpx
            headers = {"content-type": "application/json"}
            if api_key:
                headers["api-key"] = api_key
            self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers,
                                      timeout=timeout)

    @property
    def client(self):
        """qdrant-client's QdrantClient for this server, made (and imported) on first use."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    from qdrant_client import QdrantClient
                    self._client = QdrantClient(**self._client_args)
        return self._client

    def _collection(self, name: str) -> dict:
        """The collection's config over REST, or StoreError when the server cannot be
        reached."""
        try:
            return self.rest.collection(name)["config"]
        except ConnectionError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: Exception) -> StoreError:
        return StoreError(f"{self.description} is not reachable ({exc}): start it, or check "
                          f"--qdrant_url and QDRANT_API_KEY.")

    def ensure_collection(self, name: str, dim: int, indexes=None) -> None:
        if self._local:
            self._ensure_local_collection(name, dim)
            return
        try:
            exists = self.rest.exists(name)
        except Exception as exc:  # pylint: disable=broad-except
            raise self._unreachable(exc) from None
        if not exists:
            try:
                self.rest.create_collection(name, dim)
            except Exception:  # pylint: disable=broad-except
                if not self.rest.exists(name):  # not another writer's race
                    raise
        else:
            have = (self._collection(name)["params"].get("vectors") or {}).get("size")
            if have is not None and have != dim:
                raise _size_mismatch(name, have, dim)
        for field, kind in (INDEXED_FIELDS if indexes is None else indexes).items():
            self.rest.create_payload_index(name, field, _index_schema(
                kind, graph=field not in FILTER_ONLY_FIELDS))

    def _ensure_local_collection(self, name: str, dim: int) -> None:
        # local mode has no payload indexes (it warns and ignores them)
        from qdrant_client import models
        if not self.client.collection_exists(name):
            self.client.create_collection(name, vectors_config=models.VectorParams(
                size=dim, distance=models.Distance.COSINE))
            return
        have = getattr(self.client.get_collection(name).config.params.vectors, "size", None)
        if have is not None and have != dim:
            raise _size_mismatch(name, have, dim)

    def defer_indexing(self, name):
        # Qdrant's advice for bulk loads: indexing_threshold 0 while the points arrive, the
        # old threshold after, kept in the collection's metadata by the same update. A
        # threshold already kept there (a deferring run that did not finish, or one still
        # running) is the one to go back to.
        if self._local:
            return False
        config = self._collection(name)
        body: dict = {"optimizers_config": {"indexing_threshold": 0}}
        if (config.get("metadata") or {}).get(DEFERRED_KEY) is None:
            threshold = (config.get("optimizer_config") or {}).get("indexing_threshold")
            body["metadata"] = {DEFERRED_KEY: QDRANT_INDEXING_THRESHOLD if threshold is None
                                else threshold}
        self.rest.update_collection(name, body)
        return True

    def resume_indexing(self, name):
        if self._local:
            return None
        threshold = (self._collection(name).get("metadata") or {}).get(DEFERRED_KEY)
        if threshold is None:
            return None
        self.rest.update_collection(name, {
            "optimizers_config": {"indexing_threshold": int(threshold)},
            "metadata": {DEFERRED_KEY: None}})
        return int(threshold)

    def exists(self, name):
        if self.rest is not None:
            return self.rest.exists(name)
        return self.client.collection_exists(name)

    def vector_size(self, name):
        if self.rest is not None:
            return (self._collection(name)["params"].get("vectors") or {}).get("size")
        return getattr(self.client.get_collection(name).config.params.vectors, "size", None)

    def retrieve(self, name, ids, with_vector=False):
        records = self.client.retrieve(name, ids=list(ids), with_payload=True,
                                       with_vectors=with_vector)
        return [Hit(str(r.id), 1.0, dict(r.payload or {}), _vector(r) if with_vector else None)
                for r in records]

    def delete(self, name, ids):
        from qdrant_client import models
        if ids:
            self.client.delete(name, points_selector=models.PointIdsList(points=list(ids)),
                               wait=True)

    def count_where(self, name, where):
        return self.client.count(name, count_filter=_filter(where), exact=True).count

    def delete_where(self, name, where):
        from qdrant_client import models
        flt = _filter(where)
        found = self.client.count(name, count_filter=flt, exact=True).count
        if found:
            self.client.delete(name, points_selector=models.FilterSelector(filter=flt),
                               wait=True)
        return found

    def facet(self, name, key, where=None, limit=10_000):
        response = self.client.facet(name, key=key, facet_filter=_filter(where), limit=limit,
                                     exact=True)
        return {hit.value: int(hit.count) for hit in response.hits}

    def latest(self, name, where, order_key, limit, with_vector=True):
        from qdrant_client import models
        records, _ = self.client.scroll(
            name, scroll_filter=_filter(where), limit=limit, with_payload=True,
            with_vectors=with_vector,
            order_by=models.OrderBy(key=order_key, direction=models.Direction.DESC))
        return [Hit(str(r.id), 1.0, dict(r.payload or {}), _vector(r) if with_vector else None)
                for r in records]

    def latest_many(self, name, wheres, order_key, limit, with_vector=True):
        if self._local:
            return super().latest_many(name, wheres, order_key, limit, with_vector)
        from qdrant_client import models
        order = models.OrderByQuery(order_by=models.OrderBy(key=order_key,
                                                            direction=models.Direction.DESC))
        out = []
        for start in range(0, len(wheres), _LATEST_PER_REQUEST):  # one round trip a chunk
            responses = self.client.query_batch_points(name, requests=[
                models.QueryRequest(query=order, filter=_filter(where), limit=limit,
                                    with_payload=True, with_vector=with_vector)
                for where in wheres[start:start + _LATEST_PER_REQUEST]],
                timeout=int(self._timeout))
            out += [[Hit(str(r.id), 1.0, dict(r.payload or {}),
                         _vector(r) if with_vector else None) for r in response.points]
                    for response in responses]
        return out

    def set_payload(self, name, ids, payload):
        if ids:
            self.client.set_payload(name, payload=payload, points=list(ids), wait=True)

    def upsert(self, name, points):
        if self._points is not None:  # protobuf's wire bytes (levers 16, 33 and 34)
            self._points.upsert(name, points, self._timeout)
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
        if self._points is not None:
            return self._points.payload_field(name, list(ids), field, self._timeout)
        if self._http is not None:
            import orjson
            records = self._request("POST", f"/collections/{name}/points", orjson.dumps(
                {"ids": list(ids), "with_payload": [field], "with_vector": False}))
            return {str(r["id"]): r["payload"][field] for r in records
                    if field in (r.get("payload") or {})}
        records = self.client.retrieve(name, ids=list(ids), with_payload=[field],
                                       with_vectors=False)
        return {str(r.id): r.payload[field] for r in records if field in (r.payload or {})}

    def search(self, name, vector, limit=5, match=None, where=None):
        flt = _filter(Where.of(match, where))
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

    def scroll(self, name, batch=1000, where=None):
        offset, flt = None, _filter(where)
        while True:
            records, offset = self.client.scroll(name, limit=batch, offset=offset,
                                                 with_payload=True, scroll_filter=flt)
            for r in records:
                yield Hit(str(r.id), 1.0, dict(r.payload or {}))
            if offset is None:
                return

    def close(self):
        if self._http is not None:
            self._http.close()
        if self._points is not None:
            self._points.close()
        if self._client is not None:
            self._client.close()


# `latest_many`'s queries a request: 32 users' last 50 events of 512 floats, ~3 MB.
_LATEST_PER_REQUEST = 32


def _vector(record):
    vector = record.vector
    if isinstance(vector, dict):  # {vector name: vector}: the unnamed one
        vector = next(iter(vector.values()), None)
    return list(vector) if vector is not None else None


def _filter(where):
    from qdrant_client import models
    flt = filter_json(where)
    return models.Filter.model_validate(flt) if flt is not None else None
