"""What a command asks of a Qdrant server where importing qdrant-client (its pydantic
models, 0.85-1.5 s here) would be most of its time, over the server's REST API with the
standard library: the reads `vectorstream search` makes (its aliases, a collection's
vector size, one query: docs/performance.md, lever 24), and the checks a run makes before
it starts (the collection, its payload indexes, its alias and indexing threshold: lever
34). Everything else goes through qdrant-client (`ServerStore`)."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Optional

from vectorstream.io.store import Hit, Where


class QdrantHTTPError(RuntimeError):
    """A Qdrant server's HTTP error answer (status_code and headers, as the sink's
    retry rules read them)."""

    def __init__(self, status_code: int, headers, text: str):
        super().__init__(f"Qdrant answered HTTP {status_code}: {text[:300]}")
        self.status_code = status_code
        self.headers = headers


def filter_json(where: Optional[Where]) -> Optional[dict]:
    """A Where as Qdrant's filter in its REST (JSON) form, or None: what the REST reader
    sends, and what `_filter` makes qdrant-client's model of (one translation)."""
    if not where:
        return None
    must = [{"key": k, "match": {"value": v}} for k, v in where.match.items()]
    must += [{"key": k, "match": {"any": list(v)}} for k, v in where.any.items()]
    if where.before:
        must.append({"key": where.before[0], "range": {"lt": where.before[1]}})
    if where.since:
        must.append({"key": where.since[0], "range": {"gte": where.since[1]}})
    must_not = [{"key": k, "match": {"any": list(v)}} for k, v in where.not_any.items() if v]
    if where.not_ids:
        must_not.append({"has_id": list(where.not_ids)})
    flt = {}
    if must:
        flt["must"] = must
    if must_not:
        flt["must_not"] = must_not
    return flt


class RestClient:
    """A Qdrant server over REST: what `versions.model_for` and `search` ask of a store, and
    the collection calls of a run's checks (`ServerStore` uses them)."""

    def __init__(self, url: str, api_key: Optional[str] = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.description = f"Qdrant server at {url}"
        self._timeout = timeout
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["api-key"] = api_key

    def _call(self, method: str, path: str, body: Optional[dict] = None):
        request = urllib.request.Request(
            self.url + path, method=method, headers=self._headers,
            data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())["result"]
        except urllib.error.HTTPError as exc:
            raise QdrantHTTPError(exc.code, exc.headers,
                                  exc.read().decode("utf-8", "replace")) from None
        except urllib.error.URLError as exc:  # refused, unknown host, timed out
            raise ConnectionError(str(exc.reason)) from None

    @staticmethod
    def _name(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def alias_targets(self) -> Dict[str, str]:
        """{alias: the collection it points at}."""
        return {a["alias_name"]: a["collection_name"]
                for a in self._call("GET", "/aliases")["aliases"]}

    def exists(self, name: str) -> bool:
        return bool(self._call("GET", f"/collections/{self._name(name)}/exists")["exists"])

    def vector_size(self, name: str) -> Optional[int]:
        vectors = self._call("GET", f"/collections/{self._name(name)}")["config"]["params"][
            "vectors"]
        return vectors.get("size") if isinstance(vectors, dict) else None

    def search(self, name, vector, limit=5, match=None, where=None):
        body = {"query": [float(x) for x in vector], "limit": limit, "with_payload": True}
        flt = filter_json(Where.of(match, where))
        if flt:
            body["filter"] = flt
        points = self._call("POST", f"/collections/{self._name(name)}/points/query",
                            body)["points"]
        return [Hit(str(p["id"]), float(p["score"]), dict(p.get("payload") or {}))
                for p in points]

    # -- what a run's checks ask (ServerStore, versions.Aliases)
    def collection(self, name: str) -> dict:
        """The collection's info: its config (params, optimizer_config, metadata)."""
        return self._call("GET", f"/collections/{self._name(name)}")

    def create_collection(self, name: str, size: int, distance: str = "Cosine") -> None:
        self._call("PUT", f"/collections/{self._name(name)}",
                   {"vectors": {"size": size, "distance": distance}})

    def update_collection(self, name: str, body: dict) -> None:
        self._call("PATCH", f"/collections/{self._name(name)}", body)

    def create_payload_index(self, name: str, field: str, schema) -> None:
        self._call("PUT", f"/collections/{self._name(name)}/index?wait=true",
                   {"field_name": field, "field_schema": schema})

    def update_aliases(self, actions: list) -> None:
        self._call("POST", "/collections/aliases", {"actions": actions})

    def scroll_payloads(self, name: str, limit: int = 10_000) -> list:
        return [p.get("payload") or {} for p in self._call(
            "POST", f"/collections/{self._name(name)}/points/scroll",
            {"limit": limit, "with_payload": True})["points"]]

    def upsert(self, name: str, points: list) -> None:
        """Points as REST JSON ({"id", "vector", "payload"}), waiting for them."""
        self._call("PUT", f"/collections/{self._name(name)}/points?wait=true",
                   {"points": points})

    def close(self) -> None:
        pass
