"""The event format (DESIGN.md, "The event"), validated by pydantic v2.

Validation is strict on types (a price of "12" is an error, not a coercion), floats must
be finite, and unknown fields are kept: they travel into the Qdrant payload unchanged.

The schema is written as TypedDicts, validated by one `TypeAdapter` straight from the
message's JSON: pydantic-core hands back the validated data as plain dicts (floats as
floats, the timestamp a UTC datetime, only the fields the message has), which is the
payload, so no model instance is built and dumped again (docs/performance.md, lever 12).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any, Dict, Literal, Optional

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import Annotated, NotRequired, TypedDict

EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase", "wishlist_add", "search")

# Fixed namespace for point ids: uuid5(POINT_NAMESPACE, event_id). Never change it, or
# replays after an upgrade would duplicate every event.
POINT_NAMESPACE = uuid.UUID("6f1e9f0c-3b7a-5d2e-9c4b-8a1d2e3f4a5b")

# Larger messages are refused before parsing: no real event is near this size.
MAX_MESSAGE_BYTES = 1_000_000

_CONFIG = ConfigDict(extra="allow", strict=True, allow_inf_nan=False,
                     str_strip_whitespace=False)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _aware_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


NonEmpty = Annotated[str, Field(min_length=1, max_length=1_000)]
NotNegative = Annotated[float, Field(ge=0)]


class Product(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    id: NonEmpty
    name: Annotated[str, Field(min_length=1, max_length=1_000), AfterValidator(_not_blank)]
    description: NotRequired[Annotated[str, Field(max_length=20_000)]]
    category: NonEmpty
    price: NotNegative


class EventData(TypedDict):
    __pydantic_config__ = _CONFIG  # type: ignore[misc]
    event_id: NonEmpty
    timestamp: Annotated[dt.datetime, AfterValidator(_aware_utc)]
    user_id: NonEmpty
    event_type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    session_id: NotRequired[Optional[str]]
    product: Product
    quantity: NotRequired[Optional[Annotated[int, Field(ge=0)]]]
    total_amount: NotRequired[Optional[NotNegative]]
    payment_method: NotRequired[Optional[str]]
    search_query: NotRequired[Optional[str]]
    view_duration: NotRequired[Optional[NotNegative]]


_EVENT = TypeAdapter(EventData)


class Event:
    """A validated event: `data` is what pydantic gave back (unknown fields kept)."""

    __slots__ = ("data",)

    def __init__(self, data: Dict[str, Any]):
        self.data = data

    def __eq__(self, other):
        return isinstance(other, Event) and other.data == self.data

    @property
    def event_id(self) -> str:
        return self.data["event_id"]

    @property
    def timestamp(self) -> dt.datetime:
        return self.data["timestamp"]

    @property
    def text(self) -> str:
        """What gets embedded: the product's name and description."""
        product = self.data["product"]
        description = product.get("description", "").strip()
        return f"{product['name']}. {description}" if description else product["name"]

    @property
    def point_id(self) -> str:
        return point_id(self.event_id)

    def payload(self) -> dict:
        """The event as JSON-ready data, timestamp as RFC 3339 with Z (a new dict; the
        nested ones are shared)."""
        data = dict(self.data)
        data["timestamp"] = format_time(self.timestamp)
        return data


class InvalidEvent(ValueError):
    """A message that is not a valid event; the message is the dead-letter reason."""


_NAMESPACE_BYTES = POINT_NAMESPACE.bytes


def point_id(event_id: str) -> str:
    """uuid5(POINT_NAMESPACE, event_id) as a string, computed directly (a third of
    uuid.uuid5's cost; tests/test_events.py checks they agree)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + event_id.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def format_time(value: dt.datetime) -> str:
    if value.tzinfo is dt.timezone.utc:  # as validation leaves it: no conversion to make
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_raw(raw: Optional[bytes]) -> None:
    """The checks made on a message's bytes before it is parsed: not empty, not too large,
    UTF-8. Raises InvalidEvent with the reason."""
    if raw is None or len(raw) == 0:
        raise InvalidEvent("empty message")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(f"message too large: {len(raw)} bytes (limit {MAX_MESSAGE_BYTES})")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"not UTF-8: byte {exc.start} is invalid") from None


def parse_event(raw: bytes) -> Event:
    """Validates one Kafka message value; raises InvalidEvent with a readable reason."""
    check_raw(raw)
    try:
        return Event(_EVENT.validate_json(raw))
    except ValidationError as exc:
        raise InvalidEvent(describe(exc)) from None


def describe(exc: ValidationError, limit: int = 5) -> str:
    """One line per problem, e.g. "product.price: Input should be greater than or equal to 0"."""
    return describe_errors(exc.errors(include_url=False), limit)


def describe_errors(errors: list, limit: int = 5) -> str:
    parts = []
    for error in errors[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        if error["type"] == "json_invalid":
            parts.append(f"invalid JSON: {error['msg'].removeprefix('Invalid JSON: ')}")
        elif error["type"] in ("dict_type", "model_type") and not error["loc"]:
            parts.append(f"not a JSON object: got {type(error['input']).__name__}")
        else:
            parts.append(f"{where}: {error['msg']}")
    extra = len(errors) - limit
    if extra > 0:
        parts.append(f"and {extra} more")
    return "; ".join(parts)
