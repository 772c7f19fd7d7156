"""Decode a Prometheus remote-write 1.0 body: snappy block format around a protobuf
`prometheus.WriteRequest`.

No package on PyPI ships the remote-write types on their own (those that do are exporters that
pin their own protobuf and pull an SDK), so the four messages read here are declared at run
time from a small descriptor (no protoc step). Only the fields read are declared: the parser
skips the rest (exemplars, native histograms, metadata), as a receiver that does not store them
should.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from app.api.body import too_large
from app.errors import BadRequest

__all__ = ["RemoteSeries", "WriteRequest", "decode_write_request", "snappy_decompress"]

_F = descriptor_pb2.FieldDescriptorProto


def _write_request_class() -> Any:
    """`prometheus.WriteRequest` from github.com/prometheus/prometheus/prompb (remote.proto,
    types.proto), with the field numbers of the wire format."""
    fields: dict[str, list[tuple[str, int, int, str]]] = {
        "WriteRequest": [("timeseries", 1, _F.TYPE_MESSAGE, ".prometheus.TimeSeries")],
        "TimeSeries": [
            ("labels", 1, _F.TYPE_MESSAGE, ".prometheus.Label"),
            ("samples", 2, _F.TYPE_MESSAGE, ".prometheus.Sample"),
        ],
        "Label": [("name", 1, _F.TYPE_STRING, ""), ("value", 2, _F.TYPE_STRING, "")],
        "Sample": [("value", 1, _F.TYPE_DOUBLE, ""), ("timestamp", 2, _F.TYPE_INT64, "")],
    }
    file = descriptor_pb2.FileDescriptorProto(
        name="ciuic/prometheus_remote_write.proto", package="prometheus", syntax="proto3"
    )
    for name, declared in fields.items():
        msg = file.message_type.add(name=name)
        for field_name, number, kind, type_name in declared:
            repeated = kind == _F.TYPE_MESSAGE
            msg.field.add(
                name=field_name,
                number=number,
                type=kind,
                type_name=type_name or None,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
    pool = descriptor_pool.DescriptorPool()  # our own: no clash with a library's prompb
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest = _write_request_class()
"""The message class: `WriteRequest.FromString(body)`, or built and `SerializeToString()`-ed
by a sender (the tests)."""


@dataclass(frozen=True, slots=True)
class RemoteSeries:
    labels: list[tuple[str, str]]  # as sent, `__name__` included
    samples: list[tuple[float, int]]  # (value, unix milliseconds)


def _uncompressed_length(raw: bytes) -> int:
    """The snappy block's preamble: the decompressed length as a little-endian varint."""
    length = 0
    for i, byte in enumerate(raw[:10]):
        length |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return length
    raise BadRequest("invalid snappy body: no length preamble", code="invalid_snappy")


def snappy_decompress(raw: bytes, limit: int) -> bytes:
    """Snappy's block format (not its framing format), refused (413) before decompressing when
    its preamble announces more than `limit` bytes: a snappy bomb costs nothing."""
    if _uncompressed_length(raw) > limit:
        raise too_large(limit, "the decompressed body")
    try:
        return bytes(cramjam.snappy.decompress_raw(raw))
    except cramjam.DecompressionError as exc:
        raise BadRequest(f"invalid snappy body: {exc}", code="invalid_snappy") from exc


def decode_write_request(body: bytes) -> list[RemoteSeries]:
    """Raises BadRequest when `body` is not a WriteRequest (invalid UTF-8 in a label too)."""
    try:
        request = WriteRequest.FromString(body)
    except message.DecodeError as exc:
        raise BadRequest(
            f"the body is not a remote-write WriteRequest: {exc}", code="invalid_protobuf"
        ) from exc
    return [
        RemoteSeries(
            [(label.name, label.value) for label in ts.labels],
            [(sample.value, sample.timestamp) for sample in ts.samples],
        )
        for ts in request.timeseries
    ]
