"""`vectorstream search`, `recommend` and `stats`: reading the store. None of them
imports Beam."""
from __future__ import annotations

import json

from vectorstream.cli.common import CliError, parse_filters, reading, store_flags


def cmd_search(args, extra) -> int:
    from vectorstream.transforms.model import embed_query
    match = parse_filters(args.filter)
    with reading(args) as store:  # the store first: a store that does not answer fails fast
        hits = store.search(args.collection, embed_query(args.text, args.model),
                            limit=args.limit, match=match)
    if args.json:
        print(json.dumps([{"id": h.id, "score": h.score, "payload": h.payload} for h in hits],
                         ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no hits")
    for rank, hit in enumerate(hits, 1):
        p = hit.payload.get("product", {})
        print(f"{rank:2d}. {hit.score:.3f}  {p.get('name')} — {p.get('description', '')[:60]}"
              f"  [{p.get('category')}, {hit.payload.get('event_type')}]")
    return 0


def cmd_recommend(args, extra) -> int:
    from vectorstream.io import recommend
    if bool(args.user) == bool(args.product):
        raise CliError("give one of --user USER_ID or --product PRODUCT_ID")
    with reading(args) as store:
        try:
            recs, source, title = _recommend(store, args)
        except recommend.NothingToRecommendFrom as exc:
            raise CliError(f"{exc}: check the id, --collection and the store flags")
    if args.json:
        print(json.dumps(recommend.as_json(recs, source), ensure_ascii=False, indent=2))
        return 0
    print(title + ":")
    if not recs:
        print("  no recommendations")
    for rank, rec in enumerate(recs, 1):
        p = rec.product
        print(f"{rank:2d}. {rec.score:.3f}  {p.get('name')} — {str(p.get('description', ''))[:50]}"
              f"  [{p.get('category')}, {p.get('id')}]")
    return 0


def _recommend(store, args):
    from vectorstream.io import recommend
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
    with reading(args) as store:
        points = store.count(args.collection)
    info = {"store": store.description, "collection": args.collection, "points": points}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"{points} points in {args.collection} ({store.description})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("search", help="Semantic search over the stored events.")
    p.add_argument("text")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--filter", action="append", metavar="FIELD=VALUE",
                   help="Exact match on a payload field; repeatable.")
    p.add_argument("--json", action="store_true", help="Print hits with score and payload.")
    p.add_argument("--model", default=None, help="The model the collection was built with.")
    store_flags(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("recommend", help="Products to recommend: for a user (from their "
                                          "recent events) or like a product.")
    p.add_argument("--user", default=None, help="A user_id: products for them, weighted by "
                                                "what they did (purchase > add_to_cart > "
                                                "view), without those they already know.")
    p.add_argument("--product", default=None, help="A product id: products like it.")
    p.add_argument("--limit", type=int, default=5, help="Products to list (one hit each).")
    p.add_argument("--recent", type=int, default=50,
                   help="--user: how many of the user's most recent events count.")
    p.add_argument("--json", action="store_true", help="Print products with score as JSON.")
    store_flags(p)
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("stats", help="Points in the collection.")
    p.add_argument("--json", action="store_true")
    store_flags(p)
    p.set_defaults(func=cmd_stats)
