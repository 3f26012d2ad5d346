"""`vectorstream search`, `recommend` and `stats`: reading the store. None of them
imports Beam."""
from __future__ import annotations

import json

from vectorstream.cli.common import CliError, parse_filters, reading, store_flags


def _products(args) -> str:
    return args.products_collection or f"{args.collection}_products"


def _users(args) -> str:
    return args.users_collection or f"{args.collection}_users"


def _query_model(store, name, model):
    """(version, ModelChoice) to query `name` with: its own model (io.versions.model_for)."""
    from vectorstream.io.versions import model_for
    return model_for(store, name, model)


def cmd_search(args, extra) -> int:
    from vectorstream.transforms.model import embed_query
    match = parse_filters(args.filter)
    if args.user:
        return _search_for_user(args)
    with reading(args, query_only=True) as store:  # the store first: one that does not
        version, model = _query_model(store, args.collection, args.model)  # answer fails fast
        if not store.exists(version):
            raise CliError(f"{store.description} has no collection {version}: check "
                           f"--collection (`vectorstream stats` lists what a store holds), "
                           f"or run the pipeline first")
        # the version resolved once: an alias moved by a reindex meanwhile is not followed
        # halfway (a query of one model's size against the other's vectors)
        hits = store.search(version, embed_query(args.text, model.path),
                            limit=args.limit, match=match)
    if args.json:
        print(json.dumps({"model": model.name, "version": version,
                          "hits": [{"id": h.id, "score": h.score, "payload": h.payload}
                                   for h in hits]}, ensure_ascii=False, indent=2))
        return 0
    print(f"(model {model.name}, {version})")
    if not hits:
        print("no hits")
    for rank, hit in enumerate(hits, 1):
        p = hit.payload.get("product", {})
        print(f"{rank:2d}. {hit.score:.3f}  {p.get('name')} — {p.get('description', '')[:60]}"
              f"  [{p.get('category')}, {hit.payload.get('event_type')}]")
    return 0


def _search_for_user(args) -> int:
    from vectorstream.io import recommend
    from vectorstream.transforms.model import embed_query
    if args.filter:
        raise CliError("--filter applies to the events; a search for --user ranks products")
    with reading(args) as store:
        version, model = _query_model(store, _products(args), args.model)
        try:
            recs = recommend.search_for_user(store, version, _users(args), args.user,
                                             embed_query(args.text, model.path),
                                             limit=args.limit)
        except recommend.NothingToRecommendFrom as exc:
            raise CliError(f"{exc}: check the id, --collection and the store flags")
    if args.json:
        print(json.dumps(recommend.as_json(recs, {"user_id": args.user, "query": args.text,
                                                  "profile_weight": 0.3,
                                                  "model": model.name, "version": version}),
                         ensure_ascii=False, indent=2))
        return 0
    print(f'Products for "{args.text}", nudged toward user {args.user}\'s profile '
          f'(model {model.name}, {version}):')
    _print_recs(recs)
    return 0


def _print_recs(recs) -> None:
    if not recs:
        print("  nothing")
    for rank, rec in enumerate(recs, 1):
        p = rec.product
        print(f"{rank:2d}. {rec.score:.3f}  {p.get('name')} — {str(p.get('description', ''))[:50]}"
              f"  [{p.get('category')}, {p.get('id')}]")


def cmd_recommend(args, extra) -> int:
    from vectorstream.io import recommend
    if bool(args.user) == bool(args.product):
        raise CliError("give one of --user USER_ID or --product PRODUCT_ID")
    from vectorstream.io.versions import resolve, tag_of
    with reading(args) as store:
        try:
            recs, source, title = _recommend(store, args)
        except recommend.NothingToRecommendFrom as exc:
            raise CliError(f"{exc}: check the id, --collection and the store flags")
        version = resolve(store, args.collection if args.from_events else _products(args))
    source.update(model=tag_of(version), version=version)
    if args.json:
        print(json.dumps(recommend.as_json(recs, source), ensure_ascii=False, indent=2))
        return 0
    print(title + ":")
    _print_recs(recs)
    print(f"(model {source['model'] or 'as built'}, {version})")
    return 0


def _recommend(store, args):
    from vectorstream.io import recommend
    if args.user and not args.from_events:
        recs, basis = recommend.for_user_profile(store, args.collection, _products(args),
                                                 _users(args), args.user, limit=args.limit)
        source = {"user_id": args.user, "method": "profile", "events": basis.events,
                  "by_type": basis.by_type, "excluded_products": basis.excluded_products}
        title = (f"For user {args.user} (their profile from {basis.events} events: "
                 + ", ".join(f"{n} {k}" for k, n in sorted(basis.by_type.items()))
                 + f"; {len(basis.excluded_products)} products they bought or just saw "
                   "left out)")
        return recs, source, title
    if args.product and not args.from_events:
        recs, product = recommend.for_product_point(store, _products(args), args.product,
                                                    limit=args.limit)
        return recs, {"product": product, "method": "products"}, \
            f"Like {product.get('name')} ({args.product})"
    if args.user:
        recs, basis = recommend.for_user(store, args.collection, args.user,
                                         limit=args.limit, recent=args.recent)
        source = {"user_id": args.user, "events": basis.events, "by_type": basis.by_type,
                  "excluded_products": basis.excluded_products}
        title = (f"For user {args.user} (from {basis.events} recent events: "
                 + ", ".join(f"{n} {k}" for k, n in sorted(basis.by_type.items()))
                 + f"; the {len(basis.excluded_products)} products they bought or saw "
                   "left out)")
    else:
        recs, product = recommend.for_product(store, args.collection, args.product,
                                              limit=args.limit)
        source = {"product": product}
        title = f"Like {product.get('name')} ({args.product})"
    return recs, source, title


def cmd_stats(args, extra) -> int:
    from vectorstream.io.versions import resolve, tag_of
    info = {}
    with reading(args) as store:
        for name in (args.collection, _products(args), _users(args)):
            if name == args.collection or store.exists(name):
                version = resolve(store, name)
                info[name] = {"points": store.count(name), "version": version,
                              "model": tag_of(version)}
    main = info[args.collection]
    if args.json:
        print(json.dumps({"store": store.description, "collection": args.collection,
                          "points": main["points"], "version": main["version"],
                          "model": main["model"], "collections": info}))
    else:
        for name, facts in info.items():
            print(f"{facts['points']} points in {name} ({facts['version']}"
                  + (f", model {facts['model']}" if facts["model"] else "")
                  + f"; {store.description})")
    return 0


def _entity_flags(p) -> None:
    p.add_argument("--products_collection", default=None,
                   help="Default: <collection>_products.")
    p.add_argument("--users_collection", default=None, help="Default: <collection>_users.")


def register(sub) -> None:
    p = sub.add_parser("search", help="Semantic search over the stored events.")
    p.add_argument("text")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--filter", action="append", metavar="FIELD=VALUE",
                   help="Exact match on a payload field; repeatable.")
    p.add_argument("--json", action="store_true", help="Print hits with score and payload.")
    p.add_argument("--model", default=None, help="The model the collection was built with.")
    p.add_argument("--user", default=None,
                   help="Personalised: rank products by the query nudged toward this "
                        "user's profile (query + 0.3 × profile, normalised).")
    store_flags(p)
    _entity_flags(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("recommend", help="Products to recommend: for a user (their profile "
                                          "against the products) or like a product.")
    p.add_argument("--user", default=None, help="A user_id: products near their profile (the "
                                                "pipeline's users collection), without what "
                                                "they bought or just saw.")
    p.add_argument("--product", default=None, help="A product id: products like it (the "
                                                   "products collection).")
    p.add_argument("--limit", type=int, default=5, help="Products to list (one hit each).")
    p.add_argument("--recent", type=int, default=50,
                   help="--user --from_events: how many of the user's most recent events "
                        "count.")
    p.add_argument("--json", action="store_true", help="Print products with score as JSON.")
    p.add_argument("--from_events", action="store_true",
                   help="The per-event method (Qdrant's recommend over the user's or the "
                        "product's stored events) instead of the profile and products "
                        "collections.")
    store_flags(p)
    _entity_flags(p)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("stats", help="Points in the collections, their versions and models.")
    p.add_argument("--json", action="store_true")
    store_flags(p)
    _entity_flags(p)
    p.set_defaults(func=cmd_stats)
