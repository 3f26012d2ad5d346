"""The two gRPC calls the sink makes of a Qdrant server on every batch, the upsert and the
look-up of a stored field (`Points/Upsert`, `Points/Get`), written and read in protobuf's
wire format over grpcio alone:

- a point's vector goes in as its float32 bytes as they are (a packed repeated float is
  little-endian float32s back to back), where building it from 512 Python floats was the
  sink's largest cost (lever 33);
- a run that writes only events needs neither qdrant-client's message classes nor
  qdrant-client itself, whose import (its pydantic models) took 0.85-1.5 s of a run's
  start-up (lever 34). Everything else a server is asked goes through qdrant-client or
  REST (io/server.py, io/rest.py).

The field numbers are Qdrant's (points.proto and json_with_int.proto, its public API);
tests/test_qdrant.py checks them, and the bytes, against qdrant-client's own classes. A
payload with a value JSON does not have (a datetime, a UUID, a subclass) is converted by
qdrant-client as before.
"""
from __future__ import annotations

import struct
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

UPSERT_METHOD = "/qdrant.Points/Upsert"
GET_METHOD = "/qdrant.Points/Get"

# Field numbers. points.proto: UpsertPoints, PointStruct, PointId, Vectors, Vector,
# GetPoints, WithPayloadSelector, PayloadIncludeSelector, WithVectorsSelector, GetResponse,
# RetrievedPoint.
FIELDS = {
    "UpsertPoints": {"collection_name": 1, "wait": 2, "points": 3},
    "PointStruct": {"id": 1, "payload": 3, "vectors": 4},
    "PointId": {"num": 1, "uuid": 2},
    "Vectors": {"vector": 1},
    "Vector": {"data": 1},
    "GetPoints": {"collection_name": 1, "ids": 2, "with_payload": 4, "with_vectors": 5},
    "WithPayloadSelector": {"include": 2},
    "PayloadIncludeSelector": {"fields": 1},
    "WithVectorsSelector": {"enable": 1},
    "GetResponse": {"result": 1},
    "RetrievedPoint": {"id": 1, "payload": 2},
    # json_with_int.proto
    "Value": {"null_value": 1, "double_value": 2, "integer_value": 3, "string_value": 4,
              "bool_value": 5, "struct_value": 6, "list_value": 7},
    "Struct": {"fields": 1},
    "ListValue": {"values": 1},
}
_LEN, _VARINT, _I64 = 2, 0, 1  # wire types


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(message: str, field: str, wire: int = _LEN) -> bytes:
    return _varint(FIELDS[message][field] << 3 | wire)


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited protobuf field: its tag, its length as a varint, its bytes."""
    return tag + _varint(len(body)) + body


_V_STRING, _V_DOUBLE = _tag("Value", "string_value"), _tag("Value", "double_value", _I64)
_V_INT = _tag("Value", "integer_value", _VARINT)
_V_TRUE = _tag("Value", "bool_value", _VARINT) + b"\x01"
_V_FALSE = _tag("Value", "bool_value", _VARINT) + b"\x00"
_V_NULL = _tag("Value", "null_value", _VARINT) + b"\x00"
_V_STRUCT, _V_LIST = _tag("Value", "struct_value"), _tag("Value", "list_value")
_STRUCT_FIELDS, _LIST_VALUES = _tag("Struct", "fields"), _tag("ListValue", "values")
_POINT_PAYLOAD = _tag("PointStruct", "payload")
_DOUBLE = struct.Struct("<d")
_INT64 = range(-2 ** 63, 2 ** 63)
_SIZE = [bytes([n]) for n in range(128)]  # a length under 128 is its own varint byte
_KEYS: Dict[str, bytes] = {}  # a payload key -> its map entry's key field and value tag


class _NotJson(TypeError):
    """A payload value of a type JSON does not have: qdrant-client converts that point."""


# Written out (a lookup for the common one-byte lengths, the keys' bytes kept): a payload
# of an event's ~25 values takes ~22 µs so here, against ~52 µs in plain calls and ~24-39
# µs through qdrant-client's payload_to_grpc and protobuf's C code (docs/performance.md,
# lever 34).
def _value(v) -> bytes:
    """A qdrant.Value, as qdrant-client's payload_to_grpc makes it (exact types first)."""
    t = type(v)
    if t is str:
        b = v.encode()
        n = len(b)
        return _V_STRING + (_SIZE[n] if n < 128 else _varint(n)) + b
    if t is float:
        return _V_DOUBLE + _DOUBLE.pack(v)
    if t is bool:
        return _V_TRUE if v else _V_FALSE
    if t is int:
        if v not in _INT64:
            raise ValueError(f"payload integer {v} is outside 64 bits")
        return _V_INT + (_SIZE[v] if 0 <= v < 128 else _varint(v & 0xFFFFFFFFFFFFFFFF))
    if v is None:
        return _V_NULL
    if t is dict:
        body, tag = _map(_STRUCT_FIELDS, v), _V_STRUCT
    elif t is list or t is tuple:
        parts = []
        for x in v:
            x = _value(x)
            n = len(x)
            parts.append(_LIST_VALUES + (_SIZE[n] if n < 128 else _varint(n)) + x)
        body, tag = b"".join(parts), _V_LIST
    else:
        raise _NotJson(t)
    n = len(body)
    return tag + (_SIZE[n] if n < 128 else _varint(n)) + body


def _map(tag: bytes, payload: dict) -> bytes:
    """A map<string, Value> field's entries."""
    parts = []
    for key, v in payload.items():
        k = _KEYS.get(key)
        if k is None:
            if type(key) is not str:
                raise _NotJson(type(key))
            b = key.encode()
            k = b"\x0a" + _varint(len(b)) + b + b"\x12"
            if len(_KEYS) < 10_000:
                _KEYS[key] = k
        v = _value(v)
        n = len(v)
        entry = k + (_SIZE[n] if n < 128 else _varint(n)) + v
        n = len(entry)
        parts.append(tag + (_SIZE[n] if n < 128 else _varint(n)) + entry)
    return b"".join(parts)


_HEADS: dict = {}  # (id bytes, vector bytes) -> the bytes before the id, and before the vector


def point_id_and_vector(point_id: str, vector) -> bytes:
    """A PointStruct's id (a UUID) and dense vector. Building a 512-d point with an event's
    payload took 36 µs here with qdrant-client's classes and the vector as Python floats,
    19 µs with this (docs/performance.md, lever 33)."""
    ident = point_id.encode()
    data = np.asarray(vector, dtype="<f4").tobytes()
    heads = _HEADS.get((len(ident), len(data)))
    if heads is None:
        i = _field(_tag("PointStruct", "id"), _field(_tag("PointId", "uuid"), bytes(len(ident))))
        v = _field(_tag("PointStruct", "vectors"), _field(_tag("Vectors", "vector"), _field(
            _tag("Vector", "data"), bytes(len(data)))))
        heads = _HEADS[len(ident), len(data)] = (i[:-len(ident) or None],
                                                 v[:-len(data) or None])
    return heads[0] + ident + heads[1] + data


def point(point_id: str, vector, payload: dict) -> bytes:
    """One PointStruct."""
    head = point_id_and_vector(point_id, vector)
    try:
        return head + _map(_POINT_PAYLOAD, payload)
    except _NotJson:
        from qdrant_client import grpc as qgrpc
        from qdrant_client.conversions.conversion import payload_to_grpc
        message = qgrpc.PointStruct(payload=payload_to_grpc(payload))
        message.MergeFromString(head)
        return message.SerializeToString()


def upsert_request(collection: str, points: Iterable) -> bytes:
    """UpsertPoints(collection_name, wait=True, points) of store Points."""
    tag = _tag("UpsertPoints", "points")
    return (_field(_tag("UpsertPoints", "collection_name"), collection.encode())
            + _tag("UpsertPoints", "wait", _VARINT) + b"\x01"
            + b"".join(_field(tag, point(p.id, p.vector, p.payload)) for p in points))


def get_request(collection: str, ids: Iterable[str], field: str) -> bytes:
    """GetPoints of `ids` with the payload field `field` alone and no vectors."""
    id_tag, uuid_tag = _tag("GetPoints", "ids"), _tag("PointId", "uuid")
    return (_field(_tag("GetPoints", "collection_name"), collection.encode())
            + b"".join(_field(id_tag, _field(uuid_tag, i.encode())) for i in ids)
            + _field(_tag("GetPoints", "with_payload"), _field(
                _tag("WithPayloadSelector", "include"),
                _field(_tag("PayloadIncludeSelector", "fields"), field.encode())))
            + _field(_tag("GetPoints", "with_vectors"),
                     _tag("WithVectorsSelector", "enable", _VARINT) + b"\x00"))


def _read_varint(buf: bytes, i: int) -> Tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, i
        shift += 7


def _fields_of(buf: bytes) -> Iterator[Tuple[int, object]]:
    """(field number, value) of a message's fields: an int, or the bytes of a
    length-delimited or fixed-size field."""
    i, end = 0, len(buf)
    while i < end:
        key, i = _read_varint(buf, i)
        wire = key & 7
        if wire == _VARINT:
            value, i = _read_varint(buf, i)
        elif wire == _LEN:
            size, i = _read_varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire in (_I64, 5):
            size = 8 if wire == _I64 else 4
            value, i = buf[i:i + size], i + size
        else:
            raise ValueError(f"a protobuf wire type {wire} in Qdrant's answer")
        yield key >> 3, value


_VALUE = {number: name for name, number in FIELDS["Value"].items()}


def value_json(buf: bytes):
    """A qdrant.Value as JSON data."""
    for number, v in _fields_of(buf):
        kind = _VALUE.get(number)
        if kind == "string_value":
            return v.decode()
        if kind == "integer_value":
            return v - (1 << 64) if v >= 1 << 63 else v
        if kind == "double_value":
            return _DOUBLE.unpack(v)[0]
        if kind == "bool_value":
            return bool(v)
        if kind == "struct_value":
            return dict(_entries(v, FIELDS["Struct"]["fields"]))
        if kind == "list_value":
            return [value_json(x) for n, x in _fields_of(v) if n == FIELDS["ListValue"]["values"]]
        if kind == "null_value":
            return None
    return None


def _entries(buf: bytes, number: int) -> Iterator[Tuple[str, object]]:
    """The (key, JSON value) entries of a map<string, Value> field numbered `number`."""
    for n, entry in _fields_of(buf):
        if n == number:
            yield _entry(entry)


def _entry(buf: bytes) -> Tuple[str, object]:
    key, value = "", b""
    for m, x in _fields_of(buf):
        if m == 1:
            key = x.decode()
        elif m == 2:
            value = x
    return key, value_json(value)


_RESULT, _RETRIEVED_ID = FIELDS["GetResponse"]["result"], FIELDS["RetrievedPoint"]["id"]
_RETRIEVED_PAYLOAD, _ID_UUID = FIELDS["RetrievedPoint"]["payload"], FIELDS["PointId"]["uuid"]


def get_response_field(buf: bytes, field: str) -> Dict[str, object]:
    """{point id: the value of `field`} of a GetResponse, for the points that have it."""
    out = {}
    for n, retrieved in _fields_of(buf):
        if n != _RESULT:
            continue
        ident, found, value = None, False, None
        for m, x in _fields_of(retrieved):
            if m == _RETRIEVED_ID:
                for k, i in _fields_of(x):
                    ident = i.decode() if k == _ID_UUID else str(i)
            elif m == _RETRIEVED_PAYLOAD:
                key, v = _entry(x)
                if key == field:
                    found, value = True, v
        if ident is not None and found:
            out[ident] = value
    return out


class PointsChannel:
    """A gRPC channel to a Qdrant server's Points service for those two calls (bytes in,
    bytes out): TLS for an https URL, the API key as qdrant-client sends it."""

    def __init__(self, url: str, port: int, api_key: Optional[str] = None):
        import grpc
        from urllib.parse import urlparse
        parsed = urlparse(url)
        host = parsed.hostname or "localhost"
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        options = [("grpc.primary_user_agent", "vectorstream")]
        if parsed.scheme == "https":
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(), options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        self._metadata = (("api-key", api_key),) if api_key else None
        self._upsert = self._channel.unary_unary(UPSERT_METHOD)
        self._get = self._channel.unary_unary(GET_METHOD)

    def upsert(self, collection: str, points: List, timeout: float) -> None:
        self._upsert(upsert_request(collection, points), timeout=timeout,
                     metadata=self._metadata)

    def payload_field(self, collection: str, ids: List[str], field: str,
                      timeout: float) -> Dict[str, object]:
        return get_response_field(self._get(get_request(collection, ids, field),
                                            timeout=timeout, metadata=self._metadata), field)

    def close(self) -> None:
        self._channel.close()
