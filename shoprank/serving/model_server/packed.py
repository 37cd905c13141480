"""Call a SavedModel signature with its inputs packed into one matrix per dtype.

Why: calling a loaded signature from Python costs a fixed amount per input tensor (conversion,
structure flattening, argument matching), and the ranker's signature has about thirty 1-D inputs,
so that fixed part dominates a request of a few hundred rows. TF Serving feeds inputs to the graph
in C++ and never pays it. Here the server traces, once per version at load, a function that takes
one [rows, k] matrix per dtype, slices the named columns out inside the graph and calls the same
signature: one conversion per dtype instead of one per input, the same graph, the same numbers
(a test compares them).

Inputs that are not 1-D (none in the ranker) are passed on as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


class PackedCall:
    def __init__(self, function: Any) -> None:
        specs: dict[str, tf.TensorSpec] = function.structured_input_signature[1]
        self.groups: list[tuple[tf.DType, list[str]]] = []
        by_dtype: dict[tf.DType, list[str]] = {}
        self.others: list[str] = []
        for name in sorted(specs):
            spec = specs[name]
            if spec.shape.rank == 1:
                by_dtype.setdefault(spec.dtype, []).append(name)
            else:
                self.others.append(name)
        self.groups = sorted(by_dtype.items(), key=lambda item: item[0].name)
        signature = [tf.TensorSpec([None, len(names)], dtype) for dtype, names in self.groups]
        signature += [specs[name] for name in self.others]
        groups, others = self.groups, self.others

        @tf.function(input_signature=signature)
        def call(*args):
            kwargs = {}
            for (_, names), matrix in zip(groups, args[:len(groups)], strict=True):
                for column, name in enumerate(names):
                    kwargs[name] = matrix[:, column]
            kwargs.update(zip(others, args[len(groups):], strict=True))
            return function(**kwargs)

        self.concrete = call.get_concrete_function()

    def __call__(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [tf.constant(np.stack([arrays[name] for name in names], axis=1), dtype=dtype)
                for dtype, names in self.groups]
        args += [tf.constant(arrays[name]) for name in self.others]
        return {key: value.numpy() for key, value in self.concrete(*args).items()}
