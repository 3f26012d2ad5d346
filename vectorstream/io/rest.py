"""The reads `vectorstream search` makes of a Qdrant server (its aliases, a collection's
vector size, one query), over the server's REST API with the standard library: importing
qdrant-client (its pydantic models) takes 1.3 s, most of a cold search's time
(docs/performance.md, lever 24). Everything else reads through `ServerStore`."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Optional

from vectorstream.io.server import QdrantHTTPError, filter_json
from vectorstream.io.store import Hit, Where


class RestReader:
    """A read-only view of a Qdrant server for one query: what `versions.model_for` and
    `search` ask of a store."""

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

    def close(self) -> None:
        pass
