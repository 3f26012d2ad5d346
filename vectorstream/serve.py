"""`vectorstream serve`: search and recommendations over HTTP, for a shop's web front.

A small JSON API on FastAPI (its OpenAPI page at /docs, the schema at /openapi.json),
served by uvicorn. The model is loaded once, at start; the store is opened once: a Qdrant
server directly, an embedded store through the read copy a store held by a running
pipeline gives (taken again every --refresh_seconds, so what the pipeline writes shows up).

    GET /search?q=TEXT[&user=U][&limit=N]   products for a query (nudged by U's profile)
    GET /recommend/user/{user_id}[?limit=N] products for a user (their profile)
    GET /recommend/product/{product_id}     products like a product
    GET /healthz                            200, or 503 with the reason

Errors are JSON a client can act on, never a stack trace: an unknown user or product 404
with the reason, a bad parameter 422 naming it (a query over --max_query_chars is refused,
not embedded), the store gone 503.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

_LOG = logging.getLogger(__name__)


@dataclass
class ServeConfig:
    collection: str
    products: str
    users: str
    model: Optional[str]
    refresh_seconds: float = 5.0
    max_query_chars: int = 500
    max_limit: int = 100


class StoreHolder:
    """The store the API reads, opened again every `refresh_seconds` when it is an
    embedded store (a new copy of a shard a pipeline holds: what it wrote since; or the
    shard itself again). Calls to an embedded shard are serialised (one handle); calls to
    a server run in parallel (FastAPI's thread pool, one gRPC channel)."""

    def __init__(self, opener: Callable[[], Any], refresh_seconds: float):
        self._opener, self._refresh = opener, refresh_seconds
        self._lock = threading.Lock()
        self._store = None
        self._opened = 0.0
        self.error: Optional[str] = None

    def call(self, fn):
        with self._lock:
            now = time.monotonic()
            embedded = self._store is not None and self._store.embedded
            if embedded and now - self._opened >= self._refresh:
                self._store.close()
                self._store = None
            if self._store is None:
                self._store = self._opener()
                self._opened = now
            store = self._store
            if store.embedded:
                return fn(store)  # an embedded shard: one call at a time
        return fn(store)  # a server (qdrant-client over gRPC): calls in parallel

    def close(self):
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


def create_app(config: ServeConfig, holder: StoreHolder, encoder):
    """The FastAPI app; `encoder(text)` gives a query's vector."""
    from fastapi import FastAPI, Query
    from fastapi.responses import JSONResponse

    from vectorstream.io import recommend
    from vectorstream.io.store import StoreError, is_transient

    app = FastAPI(title="VectorStream", version="0.1.0",
                  description="Semantic search and recommendations over the products and "
                              "users the VectorStream pipeline keeps in Qdrant.")

    class Unavailable(Exception):
        pass

    def read(fn):
        try:
            return holder.call(fn)
        except recommend.NothingToRecommendFrom:
            raise
        except StoreError as exc:
            raise Unavailable(str(exc)) from None
        except Exception as exc:  # pylint: disable=broad-except
            if is_transient(exc):
                raise Unavailable(f"the store does not answer: {exc}") from None
            raise

    @app.exception_handler(recommend.NothingToRecommendFrom)
    def not_found(request, exc):
        return JSONResponse(status_code=404, content={"error": "not_found",
                                                      "reason": str(exc)})

    @app.exception_handler(Unavailable)
    def unavailable(request, exc):
        return JSONResponse(status_code=503, content={"error": "store_unavailable",
                                                      "reason": str(exc)})

    def as_json(recs, basis: Dict) -> Dict:
        return recommend.as_json(recs, basis)

    limit_q = Query(10, ge=1, le=config.max_limit, description="How many products.")

    @app.get("/search", summary="Products for a query, personalised with `user`")
    def search(q: str = Query(..., min_length=1, max_length=config.max_query_chars,
                              description="What the shopper typed."),
               user: Optional[str] = Query(None, description="Nudge toward this user's "
                                                             "profile."),
               limit: int = limit_q):
        vector = encoder(q)
        if user:
            recs = read(lambda s: recommend.search_for_user(
                s, config.products, config.users, user, vector, limit=limit))
        else:
            recs = read(lambda s: [recommend.Recommendation(
                recommend.as_product(h.payload), h.score, "")
                for h in s.search(config.products, vector, limit=limit)])
        return as_json(recs, {"query": q, "user_id": user})

    @app.get("/recommend/user/{user_id}", summary="Products for a user, from their profile")
    def for_user(user_id: str, limit: int = limit_q):
        recs, basis = read(lambda s: recommend.for_user_profile(
            s, config.collection, config.products, config.users, user_id, limit=limit))
        return as_json(recs, {"user_id": user_id, "events": basis.events,
                              "by_type": basis.by_type,
                              "excluded_products": basis.excluded_products})

    @app.get("/recommend/product/{product_id}", summary="Products like a product")
    def for_product(product_id: str, limit: int = limit_q):
        recs, product = read(lambda s: recommend.for_product_point(
            s, config.products, product_id, limit=limit))
        return as_json(recs, {"product": product})

    @app.get("/healthz", summary="200 while the store answers, else 503")
    def healthz():
        try:
            events, points = holder.call(lambda s: (s.count(config.collection), s.count(
                config.products) if s.exists(config.products) else 0))
        except Exception as exc:  # pylint: disable=broad-except
            return JSONResponse(status_code=503, content={"status": "unavailable",
                                                          "reason": str(exc)[:300]})
        return {"status": "ok", "events": events, "products": points}

    return app


def serve(args, opener: Callable[[], Any]) -> int:
    """Loads the model, opens the store (`opener`), serves until Ctrl-C."""
    import uvicorn

    from vectorstream.transforms.model import choose_model, load_model, resolve_device

    model = load_model(choose_model(args.model).path, resolve_device("auto"))

    def encoder(text: str):
        return model.encode([text], normalize_embeddings=True)[0]

    config = ServeConfig(collection=args.collection,
                         products=args.products_collection or f"{args.collection}_products",
                         users=args.users_collection or f"{args.collection}_users",
                         model=args.model, refresh_seconds=args.refresh_seconds,
                         max_query_chars=args.max_query_chars)
    holder = StoreHolder(opener, args.refresh_seconds)
    holder.call(lambda s: s.description)  # a store that cannot open: one line, now
    app = create_app(config, holder, encoder)
    print(f"serving on http://{args.host}:{args.port} (OpenAPI: /docs)", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                    access_log=False)
    finally:
        holder.close()
    return 0
