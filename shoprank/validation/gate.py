"""The validation gate: bad data never reaches features or models, and the user sees exactly why.

`run_gate` reads a staged canonical batch chunk by chunk, runs the Great Expectations suites of
`suites.py` on every chunk (results summed, `mostly` judged on the totals), accumulates the
whole-batch statistics of `profile.py` on the way, compares volume and distributions with the
state of the last *accepted* batch, and returns a `GateResult`: the verdict, the findings, the
plain-text summary and the Data Docs written under `reports_dir/<run stamp>/`.

It never writes to its state. Only `accept_batch`, called by the pipeline after a pass, makes the
batch the new drift reference and adds its days to the volume history, in one conditional write; a
failed gate therefore leaves the state byte for byte as it was. The state lives in the object store
(`<store>/state/validation/` in the pipeline: a local folder, or S3 in the cluster), not in the
home of whatever pod ran the gate.

Unreadable input (a file that is not parquet, a CSV that cannot be parsed) raises
`shoprank.data.errors.InputError` instead of returning a result: there is nothing to judge.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shoprank.data.errors import InputError
from shoprank.settings import load_settings
from shoprank.storage import ObjectStore, open_for
from shoprank.validation.config import GateConfig, load_config
from shoprank.validation.profile import (
    BatchProfile,
    DuplicateStats,
    ProfileBuilder,
    mix_buckets,
    price_buckets,
    psi,
    quantile_from_hist,
)
from shoprank.validation.readers import CanonicalBatch, EventsFileBatch, Provenance, SourceBatch, TableRead
from shoprank.validation.report import Finding, Outcome, new_run_dir, pct, render_summary, write_data_docs
from shoprank.validation.suites import BATCH_CHECKS, Bounds

STATE_FILE = "gate_state.json"
STATE_VERSION = 1
_SAMPLE_COLUMNS = {
    "events": ["event_time", "user_id", "item_id", "event_type", "price"],
    "items": ["item_id", "category", "brand", "price"],
    "users": ["user_id"],
}


@dataclass
class GateResult:
    """The verdict on one batch.

    `profile` (the batch's counters) and `interval` are what `accept_batch` stores; `report_dir`
    holds summary.txt, findings.json and the Data Docs site (`data_docs` is its index.html).
    """

    passed: bool
    findings: list[Finding]
    summary: str
    data_docs: Path | None
    profile: BatchProfile
    counts: dict[str, int] = field(default_factory=dict)
    interval: tuple[pd.Timestamp | None, pd.Timestamp | None] = (None, None)
    report_dir: Path | None = None
    batch: str = ""
    history_days: int = 120  # accepted days kept in the volume history (gate.toml run.history_days)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "fail"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warn"]


class GateFailed(Exception):
    """Raised by the pipeline when the gate did not pass; carries the result (summary included)."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        super().__init__(result.summary)


# ---- state ---------------------------------------------------------------------------------------

StateLocation = Path | str | ObjectStore | None


def _state_store(state_dir: StateLocation) -> ObjectStore | None:
    """Where the state lives: a local folder, an `s3://` prefix (the cluster), or a store."""
    if state_dir is None:
        return None
    if hasattr(state_dir, "read_versioned"):
        return state_dir  # type: ignore[return-value]
    return open_for(load_settings(), root=str(state_dir))


def _read_state(store: ObjectStore | None) -> tuple[dict[str, Any] | None, str | None]:
    found = store.read_versioned(STATE_FILE) if store is not None else None
    if found is None:
        return None, None
    try:
        state = json.loads(found[0].decode("utf-8"))
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"version {state.get('version')!r}")
        BatchProfile.from_json(state["reference"])
        return state, found[1]
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(Path(store.uri(STATE_FILE)), f"unreadable gate state ({err})",  # type: ignore[union-attr]
                         expected=f"a {STATE_FILE} written by accept_batch (delete it to start afresh)") from None


def load_state(state_dir: StateLocation) -> dict[str, Any] | None:
    """The accepted reference and volume history, or None before the first accepted batch."""
    return _read_state(_state_store(state_dir))[0]


def accept_batch(result: GateResult, state_dir: StateLocation) -> None:
    """Make a passed batch the drift reference and add its days to the volume history.

    Refuses a failed result. The state is one object, replaced by a conditional write (a local
    folder: a temporary file renamed over the old one; S3: `If-Match`), so readers see the old state
    or the new one, never half of either, and a second run that accepted a batch in between is
    noticed instead of overwritten.
    """
    if not result.passed:
        raise ValueError("refusing to accept a batch that failed the validation gate:\n" + result.summary)
    store = _state_store(state_dir)
    state, token = _read_state(store)
    state = state or {}
    history: dict[str, int] = dict(state.get("volume_history", {}))
    history.update(_complete_days(result.profile, result.interval))
    keep = result.history_days
    if history and keep:
        newest = max(pd.Timestamp(d) for d in history)
        history = {d: c for d, c in sorted(history.items()) if pd.Timestamp(d) > newest - pd.Timedelta(days=keep)}
    new_state = {
        "version": STATE_VERSION,
        "accepted_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "batch": result.batch,
        "reference": result.profile.to_json(),
        "volume_history": history,
    }
    data = json.dumps(new_state, indent=1, sort_keys=True).encode("utf-8")
    if store.put_if(STATE_FILE, data, token) is None:  # type: ignore[union-attr]
        raise RuntimeError(f"{store.uri(STATE_FILE)} changed while this batch was being accepted "  # type: ignore[union-attr]
                           f"(another run accepted a batch): run the gate again on the new state")


def _complete_days(profile: BatchProfile, interval: tuple[pd.Timestamp | None, pd.Timestamp | None]
                   ) -> dict[str, int]:
    """Days whose whole 24 hours lie in the interval (a partial day would drag the median down)."""
    lo, hi = interval
    if lo is None or hi is None:
        return dict(profile.day_counts)
    days = pd.date_range(lo.ceil("D"), hi.floor("D") - pd.Timedelta(days=1), freq="D")
    return {str(d.date()): profile.day_counts.get(str(d.date()), 0) for d in days}


# ---- the gate ------------------------------------------------------------------------------------

def _utc(ts: pd.Timestamp | str | None) -> pd.Timestamp | None:
    if ts is None:
        return None
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def run_gate(batch_dir: Path, *, interval_start: pd.Timestamp | None, interval_end: pd.Timestamp | None,
             state_dir: StateLocation, reports_dir: Path, config_path: Path | None = None,
             now: pd.Timestamp | None = None) -> GateResult:
    """Validate a staged canonical batch folder (or one canonical events parquet file)."""
    batch_dir = Path(batch_dir)
    reader = EventsFileBatch(batch_dir) if batch_dir.suffix == ".parquet" else CanonicalBatch(batch_dir)
    return _run(reader, interval_start, interval_end, state_dir, reports_dir, config_path, now)


def run_gate_source(source: str, path: Path, *, interval_start: pd.Timestamp | None = None,
                    interval_end: pd.Timestamp | None = None, state_dir: StateLocation, reports_dir: Path,
                    config_path: Path | None = None, now: pd.Timestamp | None = None) -> GateResult:
    """The same gate on a raw source file (tafeng, rees46) read through its adapter; rows keep
    their CSV line numbers, and what the adapter recovered from becomes `source.*` findings."""
    if source == "canonical":
        return run_gate(Path(path), interval_start=interval_start, interval_end=interval_end,
                        state_dir=state_dir, reports_dir=reports_dir, config_path=config_path,  # type: ignore[arg-type]
                        now=now)
    return _run(SourceBatch(source, path), interval_start, interval_end, state_dir, reports_dir, config_path, now)


class _Run:
    """One gate run: reads, validates, accumulates, judges, reports."""

    def __init__(self, reader: Any, config: GateConfig, bounds: Bounds, state: dict[str, Any] | None,
                 state_dir: str | None) -> None:
        from shoprank.validation.runner import GeRunner  # Great Expectations: loaded only when a suite runs

        self.reader = reader
        self.config = config
        self.bounds = bounds
        self.state = state
        self.state_dir = state_dir
        self.samples = int(config.run["sample_rows"])
        self.provenance: Provenance = reader.provenance
        self.ge = GeRunner(config, bounds, self.samples)
        self.findings: list[Finding] = []
        self.outcomes: list[Outcome] = []
        self.counts: dict[str, int] = {}
        self.drift: dict[str, float] = {}

    # -- helpers --
    def describe(self, frame: pd.DataFrame, key: Any, column: str, table: str = "events") -> str:
        """`file line N: column=value (other identifying columns)` for one offending row."""
        where = self.provenance.locate(int(key))
        try:
            row = frame.loc[key]
        except KeyError:
            return where
        if isinstance(row, pd.DataFrame):
            row = row.iloc[0]
        columns = [column] + [c for c in _SAMPLE_COLUMNS.get(table, []) if c != column and c in row.index]
        parts = []
        for c in columns:
            value = row[c] if c in row.index else None
            text = "null" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
            parts.append(f"{c}={text[:40]}")
        return f"{where}: " + " ".join(parts)

    def judge(self, check_id: str, table: str, expectation: str, ok: bool, tolerated: bool, expected: str,
              observed: str, samples: list[str] | tuple[str, ...] = (), kwargs: dict | None = None,
              result: dict | None = None) -> None:
        """Record an outcome for Data Docs and, unless it is a clean pass, a finding."""
        cfg = self.config.check(check_id)
        self.outcomes.append(Outcome(table, check_id, expectation, kwargs or {}, ok, result or {}, cfg.severity))
        if not ok:
            self.findings.append(Finding(cfg.severity, table, check_id, expectation, expected, observed,
                                         tuple(samples)))
        elif tolerated:
            self.findings.append(Finding("info", table, check_id, expectation, expected,
                                         observed + " (within tolerance)", tuple(samples[:2])))

    def info(self, table: str, check_id: str, text: str) -> None:
        self.findings.append(Finding("info", table, check_id, BATCH_CHECKS.get(check_id, "-"), "-", text))

    # -- tables --
    def small_table(self, name: str, read: TableRead | None) -> pd.DataFrame | None:
        from shoprank.validation.runner import to_frame

        if read is None:
            self.info(name, f"{name}.columns", f"no {name} table in this input: checks against it are skipped")
            return None
        self.counts[name] = read.table.num_rows
        frame = to_frame(read.table, read.keys)
        self.ge.validate(name, frame, lambda f, k, c: self.describe(f, k, c, name))
        return frame

    def run(self) -> BatchProfile:
        from shoprank.validation.runner import to_frame

        items_frame = self.small_table("items", self.reader.items())
        users_frame = self.small_table("users", self.reader.users())
        dup_cfg = self.config.check("events.duplicates")
        builder = ProfileBuilder(items_frame, list(dup_cfg["columns"]), self.samples)
        user_ids = (pa.array(users_frame["user_id"].dropna().astype(object), type=pa.string())
                    if users_frame is not None else None)
        unknown = {"events.item_id.known": [0, 0, []], "events.user_id.known": [0, 0, []]}
        n_events = 0
        for chunk in self.reader.events(int(self.config.run["chunk_rows"])):
            frame = to_frame(chunk.table, chunk.keys)
            n_events += len(frame)
            self.ge.validate("events", frame, self.describe)
            positions = builder.item_positions(chunk.table)
            if positions is not None:
                self._count_unknown(unknown["events.item_id.known"], positions == -1, positions != -2, frame,
                                    chunk.keys, "item_id")
            if user_ids is not None:
                users = chunk.table["user_id"]
                known = np.asarray(pc.is_in(users, value_set=user_ids).fill_null(False))
                valid = np.asarray(users.is_valid())
                self._count_unknown(unknown["events.user_id.known"], valid & ~known, valid, frame, chunk.keys,
                                    "user_id")
            builder.add(chunk.table, chunk.keys, positions)
            if chunk.complete_before is not None:  # None: the reader cannot promise any day is complete
                builder.close_before(chunk.complete_before)
            del frame, chunk
        self.counts = {"events": n_events, **self.counts}
        interval = tuple(str(t) if t is not None else None for t in (self.bounds.start, self.bounds.end))
        profile, dups = builder.finish(interval)  # type: ignore[arg-type]
        self._row_checks()
        self._schema_checks()
        self._not_empty(n_events)
        for check_id, (bad, total, samples) in unknown.items():
            self._known(check_id, bad, total, samples, items_frame if "item" in check_id else users_frame)
        self._duplicates(dups)
        self._volume(profile)
        self._drift(profile)
        self._source_issues()
        return profile

    def _count_unknown(self, acc: list, bad: np.ndarray, considered: np.ndarray, frame: pd.DataFrame,
                       keys: np.ndarray, column: str) -> None:
        n_bad = int(bad.sum())
        acc[0] += n_bad
        acc[1] += int(considered.sum())
        if n_bad and len(acc[2]) < self.samples:
            for key in keys[np.flatnonzero(bad)[: self.samples - len(acc[2])]]:
                acc[2].append(self.describe(frame, key, column))

    # -- judgements --
    def _row_checks(self) -> None:
        for check_id, t in self.ge.tallies.items():
            cfg = t.config
            mostly = cfg.mostly if cfg.mostly is not None else 1.0
            expected = t.check.expected + (" for every row" if mostly >= 1 else f" for at least {mostly:.1%} of rows")
            if t.error:
                observed = f"could not be evaluated: {t.error}"
            else:
                observed = f"{t.unexpected:,} of {t.denominator:,} rows ({pct(t.unexpected, t.denominator)}) " \
                           f"{t.check.violation}"
                if t.values and not t.check.denominator == "element":
                    shown = ", ".join(str(v) for v in list(dict.fromkeys(map(str, t.values)))[:5])
                    observed += f"; e.g. {shown}"
            if check_id == "items.brand.not_null" and t.denominator and t.unexpected == t.denominator:
                self.outcomes.append(Outcome(t.check.table, check_id, t.expectation.expectation_type,
                                             _kwargs(t), True, _tally_result(t), cfg.severity))
                self.info("items", check_id, "no item has a brand: the source does not provide brands")
                continue
            self.judge(check_id, t.check.table, t.expectation.expectation_type, t.success,
                       t.unexpected > 0, expected, observed, t.samples, _kwargs(t), _tally_result(t))

    def _schema_checks(self) -> None:
        problems = self.reader.schema_problems
        for table in ("events", "items", "users"):
            check_id = f"{table}.columns"
            if not self.config.check(check_id).enabled:
                continue
            mine = [p for p in problems if p.table == table]
            expected_cols = sorted(_schema(table).names)
            samples = [f"{p.file}: column {p.column}: {p.problem}, expected {p.expected}, found {p.found} "
                       f"({p.rows:,} rows not checked further)" for p in mine]
            observed = (f"{len({p.file for p in mine})} file(s) break the contract" if mine
                        else "all columns present with compatible types")
            self.judge(check_id, table, BATCH_CHECKS[check_id], not mine, False,
                       "columns " + ", ".join(f"{f.name}: {f.type}" for f in _schema(table)), observed, samples,
                       {"column_set": expected_cols}, {"observed_value": samples or expected_cols})

    def _not_empty(self, n_events: int) -> None:
        if self.config.check("events.not_empty").enabled:
            self.judge("events.not_empty", "events", BATCH_CHECKS["events.not_empty"], n_events > 0, False,
                       "at least one event", f"{n_events:,} events", (), {"min_value": 1},
                       {"observed_value": n_events})

    def _known(self, check_id: str, bad: int, total: int, samples: list[str], other: pd.DataFrame | None) -> None:
        cfg = self.config.check(check_id)
        if not cfg.enabled:
            return
        what = "items" if "item" in check_id else "users"
        if other is None:
            self.info("events", check_id, f"skipped: the input has no {what} table")
            return
        mostly = cfg.mostly if cfg.mostly is not None else 1.0
        ratio = 1 - bad / total if total else 1.0
        column = "item_id" if what == "items" else "user_id"
        self.judge(check_id, "events", BATCH_CHECKS[check_id], ratio >= mostly, bad > 0,
                   f"{column} found in the batch's {what} table for at least {mostly:.1%} of events",
                   f"{bad:,} of {total:,} events ({pct(bad, total)}) refer to {what} missing from the "
                   f"{what} table ({len(other):,} rows)", samples,
                   {"column": column, "value_set": [f"<{what}.{column}: {len(other):,} values>"], "mostly": mostly},
                   {"element_count": total, "unexpected_count": bad, "unexpected_percent": 100 * bad / max(total, 1),
                    "partial_unexpected_list": []})

    def _duplicates(self, dups: DuplicateStats) -> None:
        cfg = self.config.check("events.duplicates")
        if not cfg.enabled:
            return
        limit = float(cfg["max_rate"])
        rate = dups.duplicates / dups.rows if dups.rows else 0.0
        columns = list(cfg["columns"])
        samples = [f"{self.provenance.locate(a)} repeats {self.provenance.locate(b)}" for a, b in dups.examples]
        self.judge("events.duplicates", "events", BATCH_CHECKS["events.duplicates"], rate <= limit,
                   dups.duplicates > 0, f"at most {limit:.1%} of events repeat an earlier event "
                   f"(same {', '.join(columns)})",
                   f"{dups.duplicates:,} of {dups.rows:,} events ({pct(dups.duplicates, dups.rows)}) are repeats",
                   samples, {"column_list": columns, "mostly": 1 - limit},
                   {"element_count": dups.rows, "unexpected_count": dups.duplicates,
                    "unexpected_percent": 100 * rate})

    def _volume(self, profile: BatchProfile) -> None:
        cfg = self.config.check("events.volume")
        if not cfg.enabled:
            return
        history = (self.state or {}).get("volume_history", {})
        lo, hi = self.bounds.start, self.bounds.end
        days = sorted(_complete_days(profile, (lo, hi)).items())
        if not days:
            self.info("events", "events.volume", "skipped: the batch covers no complete day")
            return
        first = pd.Timestamp(days[0][0])
        window = [c for d, c in history.items()
                  if first - pd.Timedelta(days=int(cfg["trailing_days"])) <= pd.Timestamp(d) < first]
        if self.state is None:
            where = f"in {self.state_dir} " if self.state_dir else ""
            self.info("events", "events.volume", f"skipped: no accepted batch {where}to compare with yet")
            return
        if len(window) < int(cfg["min_history_days"]):
            where = f" in {self.state_dir}" if self.state_dir else ""
            self.info("events", "events.volume",
                      f"skipped: {len(window)} accepted day(s){where} in the {cfg['trailing_days']} days before "
                      f"{first.date()} (needs {cfg['min_history_days']})")
            return
        usual = float(np.median(window))
        lo_r, hi_r = float(cfg["min_ratio"]), float(cfg["max_ratio"])
        bad = [(d, c, c / usual if usual else float("inf")) for d, c in days
               if usual == 0 or c / usual <= lo_r or c / usual >= hi_r]
        worst = min(days, key=lambda dc: -abs(np.log((dc[1] + 1) / (usual + 1))))
        samples = [f"{d}: {c:,} events ({r:.2g}x the usual)" for d, c, r in bad[: self.samples]]
        self.judge("events.volume", "events", BATCH_CHECKS["events.volume"], not bad, False,
                   f"each day between {lo_r:g}x and {hi_r:g}x (exclusive) the usual {usual:,.0f} events "
                   f"(median of {len(window)} accepted days before {first.date()})",
                   f"{len(bad)} of {len(days)} day(s) outside" if bad else f"all {len(days)} day(s) inside",
                   samples, {"min_value": int(np.ceil(usual * lo_r)), "max_value": int(usual * hi_r)},
                   {"observed_value": int(worst[1]), "details": {"day": worst[0]}})

    def _drift(self, profile: BatchProfile) -> None:
        ids = ["events.drift.category_mix", "events.drift.price", "events.drift.events_per_user",
               "events.drift.event_type_mix"]
        enabled = [i for i in ids if self.config.check(i).enabled]
        if not enabled:
            return
        if self.state is None:
            where = f"in {self.state_dir} " if self.state_dir else ""
            self.info("events", "events.drift.*", f"skipped: no accepted batch {where}to compare with yet")
            return
        ref = BatchProfile.from_json(self.state["reference"])
        accepted = self.state.get("accepted_at", "?")[:19]
        for check_id in enabled:
            cfg = self.config.check(check_id)
            limit = float(cfg["max_psi"])
            if check_id == "events.drift.price":
                r_hist, c_hist = ref.price_array(), profile.price_array()
                if r_hist.sum() == 0 or c_hist.sum() == 0:
                    self.info("events", check_id, "skipped: no positive prices in the reference or the batch")
                    continue
                _, r, c = price_buckets(r_hist, c_hist)
                quants = [(quantile_from_hist(r_hist, q), quantile_from_hist(c_hist, q)) for q in (0.1, 0.5, 0.9)]
                detail = "price p10/p50/p90 " + "/".join(_num(a) for a, _ in quants) + " -> " + \
                         "/".join(_num(b) for _, b in quants)
                names = [f"decile {i + 1}" for i in range(len(r))]
                column = "price"
            elif check_id == "events.drift.events_per_user":
                r, c = np.array(ref.user_day_hist), np.array(profile.user_day_hist)
                if r.sum() == 0 or c.sum() == 0:
                    self.info("events", check_id, "skipped: no events in the reference or the batch")
                    continue
                names = (["1"] + [f"{2 ** (i - 1) + 1}-{2 ** i}" for i in range(1, len(r) - 1)]
                         + [f">{2 ** (len(r) - 2)}"])
                detail = f"mean events per user-day {_bucket_mean(r):.2f} -> {_bucket_mean(c):.2f}"
                column = "events_per_user_day"
            else:
                source = "categories" if check_id.endswith("category_mix") else "event_types"
                rd, cd = getattr(ref, source), getattr(profile, source)
                if not rd or not cd:
                    self.info("events", check_id, f"skipped: no {source.replace('_', ' ')} in the reference or "
                              "the batch")
                    continue
                names, r, c = mix_buckets(rd, cd, int(cfg.params.get("buckets", 50)))
                detail = ""
                column = "category" if source == "categories" else "event_type"
            value = psi(r, c)
            self.drift[check_id.rsplit(".", 1)[1]] = value
            shifts = _shifts(names, r, c)
            observed = f"PSI {value:.3f}" + (f"; {detail}" if detail else "") + (f"; largest shifts: {shifts}"
                                                                                 if value > limit else "")
            self.judge(check_id, "events", BATCH_CHECKS[check_id], value <= limit, False,
                       f"PSI <= {limit:g} against the batch accepted {accepted}", observed, (),
                       {"column": column, "threshold": limit,
                        "partition_object": {"values": [str(n) for n in names],
                                             "weights": (r / r.sum()).round(6).tolist()}},
                       {"observed_value": round(value, 6),
                        "details": {"observed_partition": {"values": [str(n) for n in names],
                                                           "weights": (c / c.sum()).round(6).tolist()},
                                    "expected_partition": {"values": [str(n) for n in names],
                                                           "weights": (r / r.sum()).round(6).tolist()}}})

    def _source_issues(self) -> None:
        for issue in self.reader.issues:
            check_id = f"source.{issue.check}"
            if check_id not in self.config.checks:
                self.findings.append(Finding("warn", "source", check_id, "-", "-", issue.message))
                continue
            cfg = self.config.check(check_id)
            if not cfg.enabled:
                continue
            where = issue.file + (f" line {issue.line}" if issue.line else "")
            table = "items" if issue.field else "events"
            if cfg.mostly is not None and issue.total:
                ratio = 1 - (issue.count or 0) / issue.total
                ok = ratio >= cfg.mostly
                expected = f"{issue.field or 'the field'} set for at least {cfg.mostly:.0%} of {table}"
                kwargs = {"column": issue.field or "-", "mostly": cfg.mostly}
                result = {"element_count": issue.total, "unexpected_count": issue.count,
                          "unexpected_percent": 100 * (issue.count or 0) / issue.total}
            else:
                ok, expected = False, "every line complete"
                kwargs = {"value": (issue.total or 0)}
                result = {"observed_value": (issue.total or 1) - (issue.count or 0)}
            self.judge(check_id, table, BATCH_CHECKS.get(check_id, "-"), ok, True, expected,
                       f"{where}: {issue.message}", (), kwargs, result)


def _schema(table: str) -> pa.Schema:
    from shoprank.validation.readers import SCHEMAS

    return SCHEMAS[table]


def _kwargs(t: Any) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, pd.Timestamp) else v)
            for k, v in t.expectation.configuration.kwargs.items() if v is not None and k != "row_condition"}


def _tally_result(t: Any) -> dict[str, Any]:
    return {"element_count": t.element, "missing_count": t.missing, "unexpected_count": t.unexpected,
            "unexpected_percent": 100.0 * t.unexpected / t.denominator if t.denominator else 0.0,
            "partial_unexpected_list": [str(v) for v in t.values[:20]],
            "partial_unexpected_index_list": list(t.samples)}


def _num(x: float | None) -> str:
    return "-" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.3g}")


def _bucket_mean(hist: np.ndarray) -> float:
    mids = np.array([1.0] + [(2 ** (i - 1) + 1 + 2 ** i) / 2 for i in range(1, len(hist))])
    return float((hist * mids).sum() / hist.sum()) if hist.sum() else 0.0


def _shifts(names: list[Any], ref: np.ndarray, cur: np.ndarray, n: int = 3) -> str:
    p, q = cur / max(cur.sum(), 1), ref / max(ref.sum(), 1)
    order = np.argsort(-np.abs(p - q))[:n]
    return ", ".join(f"{names[i]} {q[i]:.1%} -> {p[i]:.1%}" for i in order)


def _run(reader: Any, interval_start: Any, interval_end: Any, state_dir: StateLocation, reports_dir: Path,
         config_path: Path | None, now: pd.Timestamp | None) -> GateResult:
    from shoprank.validation.runner import quiet_ge

    started = time.perf_counter()
    config = load_config(config_path)
    lo, hi = _utc(interval_start), _utc(interval_end)
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError(f"data interval end {hi} must be after its start {lo}")
    now = _utc(now) or pd.Timestamp.now(tz="UTC")
    bounds = Bounds(lo, hi, now + pd.Timedelta(minutes=float(config.run["future_tolerance_minutes"])))
    store = _state_store(state_dir)
    state = load_state(store)
    with quiet_ge():
        gate = _Run(reader, config, bounds, state, store.uri("") if store is not None else None)
        profile = gate.run()
        passed = not any(f.severity == "fail" for f in gate.findings)
        run_dir = new_run_dir(Path(reports_dir), int(config.run["keep_reports"]))
        data_docs = write_data_docs(gate.ge.context, gate.outcomes, run_dir / "data_docs", run_dir.name,
                                    reader.label)
    summary = render_summary(passed=passed, findings=gate.findings, counts=gate.counts, label=reader.label,
                             interval=(lo, hi), elapsed=time.perf_counter() - started, drift=gate.drift,
                             data_docs=data_docs, config_sources=config.sources)
    (run_dir / "summary.txt").write_text(summary + "\n", encoding="utf-8")
    (run_dir / "findings.json").write_text(json.dumps(
        {"passed": passed, "batch": reader.label, "counts": gate.counts,
         "findings": [f.__dict__ for f in gate.findings]}, indent=1, default=str), encoding="utf-8")
    return GateResult(passed=passed, findings=gate.findings, summary=summary, data_docs=data_docs, profile=profile,
                      counts=gate.counts, interval=(lo, hi), report_dir=run_dir, batch=reader.label,
                      history_days=int(config.run["history_days"]))
