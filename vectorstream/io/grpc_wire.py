"""Parts of Qdrant's gRPC messages written in protobuf's wire format, where building
them field by field from Python objects is the sink's largest cost (lever 33)."""
from __future__ import annotations

import numpy as np

_WIRE_TAGS: tuple = ()
_HEADS: dict = {}  # (id bytes, vector bytes) -> the bytes before the id, and before the vector


def point_id_and_vector(point_id: str, vector) -> bytes:
    """A gRPC PointStruct's id (a UUID) and dense vector in protobuf's wire format, to merge
    into a point: the vector's float32 bytes as they are (a packed repeated float is
    little-endian float32s back to back). Building a 512-d point with an event's payload
    took 36 µs here with the vector as a list of Python floats, 19 µs so (docs/
    performance.md, lever 33). The field numbers are qdrant-client's message
    descriptors'."""
    ident = point_id.encode()
    data = np.asarray(vector, dtype="<f4").tobytes()
    heads = _HEADS.get((len(ident), len(data)))
    if heads is None:
        heads = _HEADS[len(ident), len(data)] = _heads(len(ident), len(data))
    return heads[0] + ident + heads[1] + data


def _heads(id_size: int, vector_size: int) -> tuple:
    """What goes before a point's id and before its vector's bytes: the fields' tags and
    lengths, which depend on the sizes alone."""
    global _WIRE_TAGS  # pylint: disable=global-statement
    if not _WIRE_TAGS:
        from qdrant_client import grpc as qgrpc

        def tag(message, field):  # of a length-delimited field (wire type 2)
            return _varint(message.DESCRIPTOR.fields_by_name[field].number << 3 | 2)
        _WIRE_TAGS = (tag(qgrpc.PointStruct, "id"), tag(qgrpc.PointId, "uuid"),
                      tag(qgrpc.PointStruct, "vectors"), tag(qgrpc.Vectors, "vector"),
                      tag(qgrpc.Vector, "data"))
    t_id, t_uuid, t_vectors, t_vector, t_data = _WIRE_TAGS
    ident = _field(t_id, _field(t_uuid, bytes(id_size)))
    vectors = _field(t_vectors, _field(t_vector, _field(t_data, bytes(vector_size))))
    return ident[:-id_size or None], vectors[:-vector_size or None]


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited protobuf field: its tag, its length as a varint, its bytes."""
    return tag + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
