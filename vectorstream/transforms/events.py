"""The event format (DESIGN.md, "The event") as pydantic v2 models.

Validation is strict on types (a price of "12" is an error, not a coercion), floats must
be finite, and unknown fields are kept: they travel into the Qdrant payload unchanged.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

EVENT_TYPES = ("view", "add_to_cart", "remove_from_cart", "purchase", "wishlist_add", "search")

# Fixed namespace for point ids: uuid5(POINT_NAMESPACE, event_id). Never change it, or
# replays after an upgrade would duplicate every event.
POINT_NAMESPACE = uuid.UUID("6f1e9f0c-3b7a-5d2e-9c4b-8a1d2e3f4a5b")

NonEmpty = Field(min_length=1, max_length=1_000)

# Larger messages are refused before parsing: no real event is near this size.
MAX_MESSAGE_BYTES = 1_000_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False,
                              str_strip_whitespace=False)


class Product(_Model):
    id: str = NonEmpty
    name: str = Field(min_length=1, max_length=1_000)
    description: str = Field(default="", max_length=20_000)
    category: str = NonEmpty
    price: float = Field(ge=0)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Event(_Model):
    event_id: str = NonEmpty
    timestamp: dt.datetime
    user_id: str = NonEmpty
    event_type: Literal[EVENT_TYPES]  # type: ignore[valid-type]
    session_id: Optional[str] = None
    product: Product
    quantity: Optional[int] = Field(default=None, ge=0)
    total_amount: Optional[float] = Field(default=None, ge=0)
    payment_method: Optional[str] = None
    search_query: Optional[str] = None
    view_duration: Optional[float] = Field(default=None, ge=0)

    @field_validator("timestamp")
    @classmethod
    def _aware_utc(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)

    @property
    def text(self) -> str:
        """What gets embedded: the product's name and description."""
        description = self.product.description.strip()
        return f"{self.product.name}. {description}" if description else self.product.name

    @property
    def point_id(self) -> str:
        return point_id(self.event_id)

    def payload(self) -> dict:
        """The event as JSON-ready data, timestamp as RFC 3339 with Z."""
        data = self.model_dump(mode="json", exclude_unset=True)
        data["timestamp"] = format_time(self.timestamp)
        return data


class InvalidEvent(ValueError):
    """A message that is not a valid event; the message is the dead-letter reason."""


def point_id(event_id: str) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, event_id))


def format_time(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_event(raw: bytes) -> Event:
    """Validates one Kafka message value; raises InvalidEvent with a readable reason."""
    if raw is None or len(raw) == 0:
        raise InvalidEvent("empty message")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(f"message too large: {len(raw)} bytes (limit {MAX_MESSAGE_BYTES})")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"not UTF-8: byte {exc.start} is invalid") from None
    try:
        return Event.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidEvent(describe(exc)) from None


def describe(exc: ValidationError, limit: int = 5) -> str:
    """One line per problem, e.g. "product.price: Input should be greater than or equal to 0"."""
    parts = []
    for error in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        if error["type"] == "json_invalid":
            parts.append(f"invalid JSON: {error['msg'].removeprefix('Invalid JSON: ')}")
        elif error["type"] == "model_type" and not error["loc"]:
            parts.append(f"not a JSON object: got {type(error['input']).__name__}")
        else:
            parts.append(f"{where}: {error['msg']}")
    extra = exc.error_count() - limit
    if extra > 0:
        parts.append(f"and {extra} more")
    return "; ".join(parts)
