"""`tf.train.Example` records and TFRecord files, written without importing TensorFlow.

`atvg prepare`'s parent and worker processes only write records; importing TensorFlow for that cost
each of them about five seconds of start-up on a 2-core machine. The Example messages are built by
protobuf from a copy of TensorFlow's `example.proto`/`feature.proto` schema (field numbers and types
make the wire format; the names live in a private descriptor pool, so they never clash with
TensorFlow's own if it is imported later). TFRecord framing: little-endian uint64 length, its masked
CRC-32C, the data, the data's masked CRC-32C (google-crc32c's C implementation).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import google_crc32c
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_LABEL_REPEATED = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
_LABEL_OPTIONAL = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
_TYPES = descriptor_pb2.FieldDescriptorProto


def _schema() -> descriptor_pb2.FileDescriptorProto:
    """TensorFlow's Example schema: Example{features=1} Features{map<string, Feature> feature=1}
    Feature{oneof: bytes_list=1, float_list=2, int64_list=3}, lists of packed values (field 1)."""
    schema = descriptor_pb2.FileDescriptorProto(name="atvg_example.proto", package="atvg_example", syntax="proto3")

    def message(name: str, fields: list[tuple[str, int, int, int, str]], oneof: str | None = None):
        proto = schema.message_type.add(name=name)
        if oneof:
            proto.oneof_decl.add(name=oneof)
        for field_name, number, label, kind, type_name in fields:
            field = proto.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                field.type_name = type_name
            if oneof:
                field.oneof_index = 0
        return proto

    message("BytesList", [("value", 1, _LABEL_REPEATED, _TYPES.TYPE_BYTES, "")])
    message("FloatList", [("value", 1, _LABEL_REPEATED, _TYPES.TYPE_FLOAT, "")])
    message("Int64List", [("value", 1, _LABEL_REPEATED, _TYPES.TYPE_INT64, "")])
    message("Feature", [("bytes_list", 1, _LABEL_OPTIONAL, _TYPES.TYPE_MESSAGE, ".atvg_example.BytesList"),
                        ("float_list", 2, _LABEL_OPTIONAL, _TYPES.TYPE_MESSAGE, ".atvg_example.FloatList"),
                        ("int64_list", 3, _LABEL_OPTIONAL, _TYPES.TYPE_MESSAGE, ".atvg_example.Int64List")], oneof="kind")
    features = message("Features", [("feature", 1, _LABEL_REPEATED, _TYPES.TYPE_MESSAGE, ".atvg_example.Features.FeatureEntry")])
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=_LABEL_OPTIONAL, type=_TYPES.TYPE_STRING)
    entry.field.add(name="value", number=2, label=_LABEL_OPTIONAL, type=_TYPES.TYPE_MESSAGE, type_name=".atvg_example.Feature")
    message("Example", [("features", 1, _LABEL_OPTIONAL, _TYPES.TYPE_MESSAGE, ".atvg_example.Features")])
    return schema


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_schema())
Example = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("atvg_example.Example"))


def serialize_example(bytes_features: dict[str, Iterable[bytes]], float_features: dict[str, np.ndarray],
                      int_features: dict[str, np.ndarray]) -> bytes:
    """One `tf.train.Example` as bytes; arrays are flattened (floats as float32, ints as int64)."""
    example = Example()
    feature = example.features.feature
    for name, values in bytes_features.items():
        feature[name].bytes_list.value.extend(values)
    for name, values in float_features.items():
        feature[name].float_list.value.extend(np.asarray(values, np.float32).reshape(-1).tolist())
    for name, values in int_features.items():
        feature[name].int64_list.value.extend(np.asarray(values, np.int64).reshape(-1).tolist())
    return example.SerializeToString()


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


class TFRecordWriter:
    """Appends records to a TFRecord file (uncompressed), like `tf.io.TFRecordWriter`."""

    def __init__(self, path: str):
        self._file = open(path, "wb")

    def write(self, record: bytes) -> None:
        length = struct.pack("<Q", len(record))
        self._file.write(length + _masked_crc(length) + record + _masked_crc(record))

    def close(self) -> None:
        self._file.close()
