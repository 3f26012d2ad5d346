"""Catalog records: JSON product records keyed by product id, as a compacted topic holds
them (`--catalog_topic`). A record with a value is the product's latest fields (validated
as the event's `product`); a key with a null value, a tombstone, deletes the product.
Anything else is a dead letter with its reason: a record without a key, one whose key is
not its product's id, one that is not a valid product.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict

from pydantic import TypeAdapter, ValidationError

from vectorstream.transforms.events import MAX_MESSAGE_BYTES, Product, describe, format_time

_PRODUCT = TypeAdapter(Product)


class InvalidRecord(ValueError):
    """A catalog message that is neither a product record nor a tombstone."""


def parse_record(key: bytes, value: bytes, timestamp_ms: int) -> Dict[str, Any]:
    """{"op": "upsert" | "delete", "id", "product", "text", "at"} for one catalog message;
    raises InvalidRecord with the reason."""
    if not key:
        raise InvalidRecord("a catalog record needs its product id as the key"
                            + (" (a tombstone without a key deletes nothing)"
                               if value is None else ""))
    try:
        product_id = key.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRecord("the key is not UTF-8") from None
    at = format_time(dt.datetime.fromtimestamp(timestamp_ms / 1000.0, dt.timezone.utc))
    if value is None:
        return {"op": "delete", "id": product_id, "product": None, "text": "", "at": at}
    if len(value) > MAX_MESSAGE_BYTES:
        raise InvalidRecord(f"record too large: {len(value)} bytes")
    try:
        product = _PRODUCT.validate_json(value)
    except ValidationError as exc:
        raise InvalidRecord(describe(exc)) from None
    if product["id"] != product_id:
        raise InvalidRecord(f"the key {product_id!r} is not the record's product id "
                            f"{product['id']!r}")
    return {"op": "upsert", "id": product_id, "product": dict(product),
            "text": product_text(product), "at": at}


def product_text(product: Dict[str, Any]) -> str:
    """What is embedded for a product (as for an event's)."""
    description = (product.get("description") or "").strip()
    return f"{product['name']}. {description}" if description else product["name"]
