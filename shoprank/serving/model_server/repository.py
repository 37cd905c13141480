"""The model base path in TF Serving's layout (`<base>/<model>/<version>/saved_model.pb`) and the
versions a model server has loaded from it.

A version counts only once its `saved_model.pb` exists; push writes that file last, so a
half-copied version is invisible to every server. Which versions to load and where the labels
(`stable`, `canary`) point is `<base>/models.config`, TF Serving's own model config file
(`model_config.py`); without one, the newest two versions that load are served.

Loading follows TF Serving's rules:
- a version is served only once it is loaded and its warm-up requests
  (`assets.extra/tf_serving_warmup_requests`) have run through it;
- a label moves to a version only once that version is loaded; until then it stays where it was;
- a version that fails to load (corrupt or incomplete SavedModel, failing warm-up) is logged and
  skipped, and is retried only when its files change; it never stops other versions loading.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from shoprank.models import WARMUP_FILE
from shoprank.serving import SERVED_LABEL
from shoprank.serving.model_server import model_config
from shoprank.serving.model_server.batching import Arrays, BatchingParameters, BatchScheduler
from shoprank.serving.model_server.packed import PackedCall
from shoprank.serving.model_server.tensors import from_tensor_proto
from shoprank.serving.model_server.versions import local_copy, model_versions, read_labels
from shoprank.settings import load_settings
from shoprank.storage import open_for

MAX_WARMUP_RECORDS = 1000  # TF Serving's limit too
KEEP_LOADED = 2  # newest versions kept in memory besides the labelled ones


class InvalidInput(ValueError):
    """A request that does not fit the signature (missing/unknown input, wrong dtype or shape)."""


@dataclass(frozen=True)
class InputSpec:
    """One signature input as plain values, read once at load (TensorSpec calls cost per request)."""

    dtype: tf.DType
    is_string: bool
    shape: tuple[int | None, ...] | None  # None: any rank

    def fits(self, array: np.ndarray) -> str | None:
        """None when the array fits, else what is wrong with it."""
        if self.is_string:
            if array.dtype.kind not in ("O", "U", "S") or (
                    array.dtype.kind == "O" and not all(isinstance(v, str | bytes) for v in array.reshape(-1))):
                got = "numbers" if array.dtype.kind != "O" else "values that are not all strings"
                return f"expects {self.dtype.name} values, got {got}"
        elif array.dtype.kind not in ("f", "i", "u", "b"):
            return f"expects {self.dtype.name} values, got {'strings' if array.dtype.kind in 'OUS' else array.dtype}"
        if self.shape is not None and (len(self.shape) != array.ndim or any(
                want is not None and want != got for want, got in zip(self.shape, array.shape, strict=True))):
            return f"expects shape {list(self.shape)} (None: any size), got {list(array.shape)}"
        return None


def _input_specs(function: Any) -> dict[str, InputSpec]:
    specs = function.structured_input_signature[1]
    return {name: InputSpec(spec.dtype, spec.dtype == tf.string,
                            None if spec.shape.rank is None else tuple(spec.shape.as_list()))
            for name, spec in specs.items()}


@dataclass
class LoadedModel:
    name: str
    version: int
    path: str
    signatures: dict[str, Any]
    batching: BatchingParameters | None = None
    observe_batch: Callable[[int], None] | None = None
    _schedulers: dict[str, BatchScheduler] = field(default_factory=dict, repr=False)
    _specs: dict[str, dict[str, InputSpec]] = field(default_factory=dict, repr=False)
    _packed: dict[str, PackedCall] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._specs = {key: _input_specs(fn) for key, fn in self.signatures.items()}
        if "serving_default" in self.signatures:  # traced at load, not on the first request
            self._packed["serving_default"] = PackedCall(self.signatures["serving_default"])

    def signature(self, name: str | None) -> Any:
        key = name or "serving_default"
        if key not in self.signatures:
            raise KeyError(f"model {self.name} version {self.version} has no signature {key!r}; "
                           f"available: {sorted(self.signatures)}")
        return self.signatures[key]

    def input_specs(self, signature_name: str | None = None) -> dict[str, InputSpec]:
        self.signature(signature_name)  # a clear KeyError for an unknown signature
        return self._specs[signature_name or "serving_default"]

    def check_inputs(self, inputs: Mapping[str, Any], signature_name: str | None = None) -> Arrays:
        """The inputs as arrays, or InvalidInput naming the first input that does not fit and why."""
        specs = self.input_specs(signature_name)
        expected = f"signature {signature_name or 'serving_default'} of {self.name} v{self.version} takes " \
                   f"{len(specs)} inputs"
        missing = sorted(set(specs) - set(inputs))
        if missing:
            raise InvalidInput(f"missing input {missing[0]!r}" + (f" (and {len(missing) - 1} more: {missing[1:5]})"
                                                                  if len(missing) > 1 else "") + f"; {expected}")
        unknown = sorted(set(inputs) - set(specs))
        if unknown:
            raise InvalidInput(f"input {unknown[0]!r} is not in the signature; {expected}: {sorted(specs)}")
        arrays: Arrays = {}
        rows: set[int] = set()
        for key, spec in specs.items():
            try:
                array = np.asarray(inputs[key])
            except ValueError as err:  # ragged nested lists
                raise InvalidInput(f"input {key!r} is not a rectangular array: {err}") from err
            problem = spec.fits(array)
            if problem:
                raise InvalidInput(f"input {key!r} {problem}")
            rows.add(array.shape[0] if array.ndim else 1)
            arrays[key] = array
        if len(rows) > 1:
            raise InvalidInput(f"inputs have different batch sizes {sorted(rows)}; every input needs one value per row")
        return arrays

    def _run(self, signature_name: str | None, arrays: Arrays) -> Arrays:
        key = signature_name or "serving_default"
        if key not in self._packed:
            self._packed[key] = PackedCall(self.signature(key))
        return self._packed[key](arrays)

    def predict(self, inputs: Mapping[str, Any], signature_name: str | None = None) -> Arrays:
        arrays = self.check_inputs(inputs, signature_name)
        if self.batching is None:
            return self._run(signature_name, arrays)
        key = signature_name or "serving_default"
        if key not in self._schedulers:
            self._schedulers[key] = BatchScheduler(lambda batch: self._run(key, batch), self.batching,
                                                   self.observe_batch)
        return self._schedulers[key].submit(arrays)

    def warm_up(self) -> int:
        """Replay the version's warm-up requests (TF Serving's `assets.extra` records); return how many."""
        from tensorflow_serving.apis import prediction_log_pb2


        path = Path(self.path) / WARMUP_FILE
        if not path.exists():
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog.FromString(record)
            request = log.predict_log.request
            inputs = {k: from_tensor_proto(v) for k, v in request.inputs.items()}
            self._run(request.model_spec.signature_name or None, self.check_inputs(inputs,
                                                                                   request.model_spec.signature_name
                                                                                   or None))
            count += 1
        return count

    def close(self) -> None:
        for scheduler in self._schedulers.values():
            scheduler.close()


@dataclass
class VersionState:
    state: str  # LOADING, AVAILABLE, END (failed or unloaded)
    error: str = ""
    fingerprint: tuple[str, ...] = ()


class ModelRepository:
    """Loads the servable versions of every model under a base path and reloads when new ones land."""

    def __init__(self, base_path: str, endpoint_url: str | None = None, batching: BatchingParameters | None = None,
                 log: Callable[[str], None] | None = None, observe_batch: Callable[[int], None] | None = None,
                 cache_dir: str | None = None) -> None:
        self.base_path = base_path
        self.store = open_for(load_settings(s3_endpoint_url=endpoint_url or ""), "models", root=base_path)
        self.batching = batching
        self.observe_batch = observe_batch
        self.log = log or (lambda message: print(f"model server: {message}", flush=True))
        self.cache_dir = Path(cache_dir or Path(tempfile.gettempdir()) / "shoprank-models")
        self._loaded: dict[str, dict[int, LoadedModel]] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._states: dict[tuple[str, int], VersionState] = {}
        self._refresh_lock = threading.Lock()
        self._lock = threading.Lock()
        self.on_change: list[Callable[[], None]] = []

    def model_names(self) -> list[str]:
        names = {key.split("/")[0] for key in self.store.list("") if "/" in key}
        return sorted(n for n in names if model_versions(self.store, n))

    def _local_dir(self, name: str, version: int) -> str:
        return local_copy(self.store, f"{name}/{version}", self.cache_dir)

    def _load(self, name: str, version: int) -> LoadedModel:
        started = time.perf_counter()
        path = self._local_dir(name, version)
        loaded = tf.saved_model.load(path)
        model = LoadedModel(name, version, path, dict(loaded.signatures), self.batching, self.observe_batch)
        if "serving_default" not in model.signatures:
            raise ValueError(f"no serving_default signature (has {sorted(model.signatures)})")
        warmed = model.warm_up()
        self.log(f"{name} v{version} AVAILABLE: loaded in {time.perf_counter() - started:.1f}s, "
                 f"{warmed} warm-up requests replayed")
        return model

    def refresh(self) -> None:
        """One poll: load new servable versions, move labels to loaded versions, unload the rest.

        Loading runs outside the request lock, so requests keep being served by the loaded versions
        meanwhile; the new version and the labels that point at it appear together.
        """
        with self._refresh_lock:
            for name in self.model_names():
                versions = model_versions(self.store, name)
                labels = read_labels(self.store, name)
                listed = model_config.served_versions(self.store, name)
                if listed is not None:  # models.config says which versions, as for TF Serving
                    for version in sorted(set(listed) & set(versions) - set(self._loaded.get(name, {}))):
                        self._try_load(name, version)
                    self._publish(name, labels, set(listed))
                    continue
                # no config: the newest KEEP_LOADED versions that load (a bad newest version falls
                # back to the one before it), plus every labelled version
                serving: list[int] = []
                for version in sorted(versions, reverse=True):
                    if len(serving) >= KEEP_LOADED:
                        break
                    if version not in self._loaded.get(name, {}):
                        self._try_load(name, version)
                    if version in self._loaded.get(name, {}):
                        serving.append(version)
                labelled = {v for v in labels.values() if v in versions}
                for version in sorted(labelled - set(self._loaded.get(name, {}))):
                    self._try_load(name, version)
                self._publish(name, labels, set(serving) | labelled)

    def _try_load(self, name: str, version: int) -> None:
        fingerprint = tuple(self.store.list(f"{name}/{version}/"))
        previous = self._states.get((name, version))
        if previous is not None and previous.state == "END" and previous.fingerprint == fingerprint:
            return  # failed before and nothing changed since: don't retry every poll
        self._states[(name, version)] = VersionState("LOADING", fingerprint=fingerprint)
        try:
            model = self._load(name, version)
        except Exception as err:  # a bad version is skipped, never fatal: newer ones must still load
            message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            self._states[(name, version)] = VersionState("END", message, fingerprint)
            self.log(f"{name} v{version} failed to load and is skipped: {message}")
            return
        with self._lock:
            self._loaded.setdefault(name, {})[version] = model
            self._states[(name, version)] = VersionState("AVAILABLE", fingerprint=fingerprint)

    def _publish(self, name: str, labels: dict[str, int], wanted: set[int]) -> None:
        with self._lock:
            have = self._loaded.get(name, {})
            current = self._labels.get(name, {})
            effective = {}
            for label, version in labels.items():
                if version in have:
                    effective[label] = version
                elif label in current and current[label] in have:
                    effective[label] = current[label]
                    self.log(f"{name}: label {label!r} -> v{version} waits for that version to load; "
                             f"still v{current[label]}")
            changed = effective != current
            self._labels[name] = effective
            pinned = set(effective.values())
            doomed = [v for v in have if v not in wanted and v not in pinned]
            for version in doomed:
                have.pop(version).close()
                self._states[(name, version)] = VersionState("END", "unloaded")
        if changed or doomed:
            for callback in self.on_change:
                callback()

    def labels(self, name: str) -> dict[str, int]:
        with self._lock:
            return dict(self._labels.get(name, {}))

    def status(self, name: str) -> dict[int, VersionState]:
        """Every version this server has tried, newest first (TF Serving's GetModelStatus)."""
        states = {v: s for (n, v), s in self._states.items() if n == name}
        if not states:
            raise KeyError(f"no model named {name!r} is loaded from {self.base_path}")
        return dict(sorted(states.items(), reverse=True))

    def loaded(self) -> dict[str, list[int]]:
        with self._lock:
            return {name: sorted(have) for name, have in self._loaded.items() if have}

    def get(self, name: str, version: int | None = None, label: str | None = None) -> LoadedModel:
        with self._lock:
            have = self._loaded.get(name)
            if not have:
                raise KeyError(f"no model named {name!r} is loaded from {self.base_path}")
            labels = self._labels.get(name, {})
            if label is not None:
                if label not in labels:
                    raise KeyError(f"model {name!r} has no loaded version labelled {label!r}; labels: {labels}")
                version = labels[label]
            if version is None:  # like a TF Serving config that pins `stable`; newest when unlabelled
                version = labels.get(SERVED_LABEL, max(have))
            if version not in have:
                raise KeyError(f"model {name!r} has no loaded version {version}; loaded: {sorted(have)}")
            return have[version]

    def close(self) -> None:
        with self._lock:
            for have in self._loaded.values():
                for model in have.values():
                    model.close()
