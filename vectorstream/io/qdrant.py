"""Qdrant behind one facade, as qdrant-client puts local and remote behind one client:
`open_store` gives the store the flags name, an embedded Qdrant Edge shard
(`vectorstream.io.edge`) or a Qdrant server or qdrant-client's local mode
(`vectorstream.io.server`), both behind the interface of `vectorstream.io.store`.
"""
from __future__ import annotations

import os
from typing import Optional

from vectorstream.io.edge import EdgeStore
from vectorstream.io.server import ServerStore
from vectorstream.io.store import Hit, Point, Store, StoreError

__all__ = ["EdgeStore", "Hit", "Point", "ServerStore", "Store", "StoreError", "open_store",
           "qdrant_api_key"]


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
               read_only: bool = False, grpc: bool = True,
               grpc_port: Optional[int] = None) -> Store:
    """The store the flags name: --qdrant_url wins when given, else --qdrant_path.
    `read_only` (search, stats) may read a copy of an embedded store a pipeline holds;
    `grpc` picks gRPC over REST for a server, on `grpc_port` (default: 6334 when the URL
    is on port 6333; elsewhere it must be given: `server.grpc_port_for`)."""
    if url:
        return ServerStore(url, api_key=qdrant_api_key(), grpc=grpc, grpc_port=grpc_port)
    if not path:
        raise StoreError("no Qdrant store given: set --qdrant_path DIR or --qdrant_url URL.")
    if read_only and not os.path.isdir(path):
        raise StoreError(f"there is no embedded Qdrant store at {os.path.abspath(path)}: run "
                         f"the pipeline first, or check --qdrant_path.")
    return EdgeStore(path, read_only=read_only)
