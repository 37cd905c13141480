"""numpy arrays to and from TensorFlow's TensorProto, the payload of TF Serving's gRPC API.

`tf.make_tensor_proto` / `tf.make_ndarray` are general (any dtype, nested lists, broadcasting) and
cost tens of microseconds per tensor; a ranker request carries about thirty tensors per call. Numbers
travel here as raw little-endian `tensor_content` and strings as `string_val`, which is what TF
Serving itself sends and accepts; anything else falls back to TensorFlow's own converters.
"""

from __future__ import annotations

import math

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

_NUMERIC = {
    np.dtype("float32"): types_pb2.DT_FLOAT,
    np.dtype("float64"): types_pb2.DT_DOUBLE,
    np.dtype("int32"): types_pb2.DT_INT32,
    np.dtype("int64"): types_pb2.DT_INT64,
    np.dtype("bool"): types_pb2.DT_BOOL,
}
_FROM_DT = {v: k for k, v in _NUMERIC.items()}
_LITTLE = {k: k.newbyteorder("<") for k in _NUMERIC}
# the repeated field that holds each dtype's values when tensor_content is empty
_VAL_FIELD = {types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_INT32: "int_val",
              types_pb2.DT_INT64: "int64_val", types_pb2.DT_BOOL: "bool_val"}
DTYPE_NAMES = {value: name for name, value in types_pb2.DataType.items()}


def fill_tensor_proto(proto: tensor_pb2.TensorProto, value: np.ndarray) -> None:
    """Write `value` into an (empty) TensorProto in place, e.g. `request.inputs[name]`."""
    array = np.asarray(value)
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    if array.dtype.kind in ("O", "U", "S"):
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend([v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)])
        return
    dtype = _NUMERIC.get(array.dtype)
    if dtype is None:
        import tensorflow as tf

        proto.Clear()
        proto.CopyFrom(tf.make_tensor_proto(array))
        return
    proto.dtype = dtype
    proto.tensor_content = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def to_tensor_proto(value: np.ndarray) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto()
    fill_tensor_proto(proto, value)
    return proto


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> np.ndarray:
    shape = tuple([d.size for d in proto.tensor_shape.dim])
    size = math.prod(shape)
    dtype_enum = proto.dtype
    if dtype_enum == types_pb2.DT_STRING:
        values = np.array(proto.string_val, dtype=object)
        if values.size == size:
            return values.reshape(shape)
        if values.size == 1 or size == 0:
            return np.full(shape, values[0] if values.size else b"", dtype=object)
        raise ValueError(f"tensor of shape {list(shape)} carries {values.size} strings")
    dtype = _FROM_DT.get(dtype_enum)
    if dtype is None:
        import tensorflow as tf

        return tf.make_ndarray(proto)
    content = proto.tensor_content
    if content:
        flat = np.frombuffer(content, dtype=_LITTLE[dtype])
        if flat.size != size:
            raise ValueError(f"tensor of shape {list(shape)} carries {flat.size} values")
        return flat.astype(dtype, copy=False).reshape(shape)
    values = np.array(getattr(proto, _VAL_FIELD[proto.dtype]), dtype=dtype)
    if values.size == size:
        return values.reshape(shape)
    if values.size == 1 or size == 0:  # TF's compact form: one value repeated over the shape
        return np.full(shape, values[0] if values.size else 0, dtype=dtype)
    raise ValueError(f"tensor of shape {list(shape)} carries {values.size} values")
