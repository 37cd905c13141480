"""Great Expectations, run chunk by chunk, with results summed over the whole batch.

GE validates one pandas frame at a time. To keep memory bounded the gate hands it one chunk at a
time and adds up what each expectation reports (rows looked at, nulls, unexpected rows); `mostly`
is then judged on the totals, so a batch fails or passes the same way however it is chunked.

Speed matters (the gate should cost at most ~3x hand-written checks), so:
- every chunk is validated with the cheap BASIC result format; only an expectation that found
  unexpected rows in a chunk is re-run there with SUMMARY to fetch the offending rows' index,
  and only until enough samples are collected;
- strings reach GE as Arrow-backed pandas strings (null checks and set membership are
  vectorised there);
- GE's per-batch fingerprint (an md5 over a full `hash_pandas_object` of the frame, computed
  twice per validation and only used as a batch marker) is switched off while the gate runs:
  on 1M rows it costs more than all the expectations together.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
import great_expectations.execution_engine.pandas_execution_engine as _pandas_engine  # noqa: E402

from shoprank.validation.config import CheckConfig, GateConfig  # noqa: E402
from shoprank.validation.suites import Bounds, RowCheck, build_suites  # noqa: E402


@contextlib.contextmanager
def quiet_ge() -> Iterator[None]:
    """No batch fingerprinting, progress bars or library warnings while the gate runs."""
    threshold = _pandas_engine.HASH_THRESHOLD
    _pandas_engine.HASH_THRESHOLD = 0
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        _pandas_engine.HASH_THRESHOLD = threshold
        logger.setLevel(level)


def _string_dtype(t: pa.DataType) -> Any:
    return pd.StringDtype("pyarrow") if pa.types.is_string(t) or pa.types.is_large_string(t) else None


def to_frame(table: pa.Table, keys: Any) -> pd.DataFrame:
    """A pandas frame for GE: Arrow-backed strings, index = row keys (what GE reports back)."""
    frame = table.to_pandas(types_mapper=_string_dtype)
    frame.index = pd.Index(keys)
    return frame


@dataclass
class Tally:
    """One row-level expectation's results summed over chunks."""

    check: RowCheck
    config: CheckConfig
    expectation: Any  # the GE Expectation (its configuration goes to Data Docs)
    element: int = 0
    missing: int = 0
    unexpected: int = 0
    values: list[Any] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def denominator(self) -> int:
        return self.element if self.check.denominator == "element" else self.element - self.missing

    @property
    def ratio(self) -> float:
        """Share of rows that meet the expectation (1.0 when there was nothing to check)."""
        return 1.0 - self.unexpected / self.denominator if self.denominator else 1.0

    @property
    def success(self) -> bool:
        mostly = self.config.mostly if self.config.mostly is not None else 1.0
        return self.error is None and self.ratio >= mostly - 1e-12


class GeRunner:
    """An ephemeral GE context holding the three suites and the running tallies."""

    def __init__(self, config: GateConfig, bounds: Bounds, sample_rows: int) -> None:
        self.sample_rows = sample_rows
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = {"globally": False}  # type: ignore[assignment]
        source = self.context.data_sources.add_pandas("shoprank")
        self.batch_definitions = {
            table: source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(f"{table}-chunk")
            for table in ("events", "items", "users")
        }
        self.suites: dict[str, gx.ExpectationSuite] = {}
        self.columns: dict[str, list[str]] = {}
        self.tallies: dict[str, Tally] = {}
        for table, (suite, checks) in build_suites(config, bounds).items():
            self.suites[table] = self.context.suites.add(suite)
            used: set[str] = set()
            for expectation in self.suites[table].expectations:
                check_id = expectation.meta["check"]
                self.tallies[check_id] = Tally(checks[check_id], config.check(check_id), expectation)
                used.add(expectation.column)
                condition = getattr(expectation, "row_condition", None)
                if condition is not None and hasattr(condition, "column"):
                    used.add(condition.column.name)
            self.columns[table] = sorted(used)

    def validate(self, table: str, frame: pd.DataFrame, describe: Callable[[pd.DataFrame, Any, str], str]) -> None:
        """Validate one chunk of `table`; add its counts; collect offending rows while few are known."""
        suite = self.suites[table]
        if not suite.expectations or frame.empty:
            return
        # Only the columns the suite reads: GE copies the whole frame whenever it filters rows.
        batch = self.batch_definitions[table].get_batch(
            batch_parameters={"dataframe": frame[[c for c in self.columns[table] if c in frame.columns]]})
        result = batch.validate(suite, result_format={"result_format": "BASIC"})
        need_samples = []
        for r in result.results:
            tally = self.tallies[r.expectation_config.meta["check"]]
            if r.exception_info and r.exception_info.get("raised_exception"):
                tally.error = str(r.exception_info.get("exception_message", "error")).splitlines()[0]
                continue
            res = r.result or {}
            unexpected = int(res.get("unexpected_count") or 0)
            tally.element += int(res.get("element_count") or 0)
            tally.missing += int(res.get("missing_count") or 0)
            tally.unexpected += unexpected
            if unexpected and len(tally.samples) < self.sample_rows:
                need_samples.append(tally)
        if need_samples:
            self._collect_samples(batch, frame, need_samples, describe)

    def _collect_samples(self, batch: Any, frame: pd.DataFrame, tallies: list[Tally],
                         describe: Callable[[pd.DataFrame, Any, str], str]) -> None:
        suite = gx.ExpectationSuite(name="samples")
        for tally in tallies:
            suite.add_expectation(tally.expectation.copy(update={"id": None}))
        result = batch.validate(suite, result_format={"result_format": "SUMMARY",
                                                      "partial_unexpected_count": self.sample_rows})
        for r in result.results:
            tally = self.tallies[r.expectation_config.meta["check"]]
            res = r.result or {}
            room = self.sample_rows - len(tally.samples)
            keys = list(res.get("partial_unexpected_index_list") or [])[:room]
            values = list(res.get("partial_unexpected_list") or [])[:room]
            tally.samples.extend(describe(frame, key, tally.check.column) for key in keys)
            tally.values.extend(values)
