"""Statistics that need the whole batch, accumulated chunk by chunk in bounded memory.

Great Expectations judges rows; a few checks need the whole batch instead: duplicate events,
volume per day, and the distributions compared against the last accepted batch for drift. These
are accumulated here incrementally while the chunks stream past, so 10M events never sit in
memory at once:

- duplicates and events-per-user-day use a 64-bit hash per row, kept per *day* (a duplicate
  shares its event_time, hence its day). For date-partitioned input the gate closes a day when
  the reader moves past its partition, so memory holds about one day of hashes (16 bytes/row);
- volume, event-type mix, category mix, and price are small counters (a log-scale price
  histogram with 1% resolution stands in for exact quantiles).

`BatchProfile` is what `accept_batch` stores as the next drift reference: counters only, never
rows or ids, so the state stays a few kilobytes and holds no personal data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

US_PER_DAY = 86_400_000_000
PRICE_LOG_MIN = -3.0  # 0.001
PRICE_BINS_PER_DECADE = 100
PRICE_BINS = 1_100  # up to 1e8
USER_DAY_BUCKETS = 16  # 1, 2, 3-4, 5-8, ... (log2), last bucket open-ended
_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """A fast, well-mixing 64-bit hash of 64-bit integers (SplitMix64 finaliser)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _MIX
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def column_hash(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A uint64 per value; equal values hash equal, nulls hash to one constant.

    Strings are dictionary-encoded first, so each distinct string is hashed once (ids repeat a lot).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        encoded = column if pa.types.is_dictionary(t) else pc.dictionary_encode(column)
        words = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
        dict_hash = pd.util.hash_array(words, categorize=False) if len(words) else np.empty(0, np.uint64)
        indices = encoded.indices
        valid = np.asarray(indices.is_valid())
        positions = indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        out = dict_hash[positions] if len(dict_hash) else np.zeros(len(column), np.uint64)
    else:
        if pa.types.is_timestamp(t):
            values = column.cast(pa.int64())
        elif pa.types.is_floating(t):
            values = column.cast(pa.float64())
        else:
            values = column.cast(pa.int64())
        valid = np.asarray(values.is_valid())
        raw = values.fill_null(0).to_numpy(zero_copy_only=False)
        out = _splitmix(raw.view(np.uint64) if raw.dtype != np.uint64 else raw)
    if not valid.all():
        out = out.copy()
        out[~valid] = _NULL_HASH
    return out


def row_hash(table: pa.Table, columns: list[str]) -> np.ndarray:
    """Combine column hashes into one uint64 per row (order-sensitive)."""
    h = np.zeros(table.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in columns:
            h = _splitmix(h * np.uint64(31) ^ column_hash(table[name]))
    return h


@dataclass
class DuplicateStats:
    """Totals and a few examples of duplicate events (row keys of the repeat and the first)."""

    rows: int = 0
    duplicates: int = 0
    examples: list[tuple[int, int]] = field(default_factory=list)


class DayBuckets:
    """Per-day (event hash, user hash, row key) arrays; a closed day is reduced to counts and freed."""

    def __init__(self, max_examples: int) -> None:
        self._open: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.dups = DuplicateStats()
        self.user_day_hist = np.zeros(USER_DAY_BUCKETS, dtype=np.int64)
        self.max_examples = max_examples

    def add(self, days: np.ndarray, event_hash: np.ndarray, user_hash: np.ndarray, keys: np.ndarray) -> None:
        order = np.argsort(days, kind="stable")
        days, event_hash, user_hash, keys = days[order], event_hash[order], user_hash[order], keys[order]
        bounds = np.flatnonzero(np.diff(days)) + 1
        for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(days)], strict=True):
            if stop > start:
                self._open.setdefault(int(days[start]), []).append(
                    (event_hash[start:stop], user_hash[start:stop], keys[start:stop]))

    def close_before(self, day: int | None) -> None:
        """Reduce every day before `day` (all days when None): the reader will not see them again."""
        for d in sorted(k for k in self._open if day is None or k < day):
            self._close(self._open.pop(d))

    def _close(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        events = np.concatenate([p[0] for p in parts])
        users = np.concatenate([p[1] for p in parts])
        keys = np.concatenate([p[2] for p in parts])
        order = np.argsort(events, kind="stable")  # keys arrive ascending, so ties stay in reading order
        sorted_events = events[order]
        repeat = np.flatnonzero(sorted_events[1:] == sorted_events[:-1]) + 1
        self.dups.rows += len(events)
        self.dups.duplicates += len(repeat)
        room = self.max_examples - len(self.dups.examples)
        if len(repeat) and room > 0:
            first_of_run = np.searchsorted(sorted_events, sorted_events[repeat], side="left")
            repeat_keys, first_keys = keys[order[repeat]], keys[order[first_of_run]]
            earliest = np.argsort(repeat_keys, kind="stable")[:room]  # report in reading order
            self.dups.examples.extend(zip(repeat_keys[earliest].tolist(), first_keys[earliest].tolist(),
                                          strict=True))
        _, per_user = np.unique(users, return_counts=True)
        buckets = np.minimum(np.ceil(np.log2(per_user)).astype(int), USER_DAY_BUCKETS - 1)
        self.user_day_hist += np.bincount(buckets, minlength=USER_DAY_BUCKETS)


def price_bins(prices: np.ndarray) -> np.ndarray:
    """Fine log-scale histogram bin of each positive price (1% wide)."""
    logs = (np.log10(prices) - PRICE_LOG_MIN) * PRICE_BINS_PER_DECADE
    return np.clip(logs.astype(np.int64), 0, PRICE_BINS - 1)


def bin_price(index: int) -> float:
    """Lower edge of a fine price bin."""
    return float(10 ** (PRICE_LOG_MIN + index / PRICE_BINS_PER_DECADE))


def quantile_from_hist(hist: np.ndarray, q: float) -> float | None:
    total = hist.sum()
    if total == 0:
        return None
    position = int(np.searchsorted(np.cumsum(hist), q * total, side="left"))
    return bin_price(min(position, len(hist) - 1))


@dataclass
class BatchProfile:
    """The batch's summary statistics: the volume history entry and the drift reference."""

    events: int = 0
    day_counts: dict[str, int] = field(default_factory=dict)
    event_types: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    price_hist: dict[int, int] = field(default_factory=dict)  # sparse fine log bins
    user_day_hist: list[int] = field(default_factory=list)
    interval: tuple[str | None, str | None] = (None, None)

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "day_counts": self.day_counts,
            "event_types": self.event_types,
            "categories": self.categories,
            "price_hist": {str(k): v for k, v in self.price_hist.items()},
            "user_day_hist": self.user_day_hist,
            "interval": list(self.interval),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchProfile:
        return cls(
            events=int(data["events"]),
            day_counts={k: int(v) for k, v in data["day_counts"].items()},
            event_types={k: int(v) for k, v in data["event_types"].items()},
            categories={k: int(v) for k, v in data["categories"].items()},
            price_hist={int(k): int(v) for k, v in data["price_hist"].items()},
            user_day_hist=[int(v) for v in data["user_day_hist"]],
            interval=tuple(data.get("interval", (None, None))),  # type: ignore[arg-type]
        )

    def price_array(self) -> np.ndarray:
        hist = np.zeros(PRICE_BINS, dtype=np.int64)
        for k, v in self.price_hist.items():
            hist[k] = v
        return hist


class ProfileBuilder:
    """Feeds on canonical arrow chunks; `finish()` gives the BatchProfile and duplicate stats."""

    def __init__(self, catalogue: pd.DataFrame | None, duplicate_columns: list[str], max_examples: int) -> None:
        self.day_counts: Counter[int] = Counter()
        self.event_types: Counter[str] = Counter()
        self.price_hist = np.zeros(PRICE_BINS, dtype=np.int64)
        self.events = 0
        self.buckets = DayBuckets(max_examples)
        self.duplicate_columns = duplicate_columns
        self._catalogue_ids: pa.Array | None = None
        if catalogue is not None:  # an empty catalogue makes every referenced item unknown
            self._catalogue_ids = pa.array(catalogue["item_id"].astype(object), type=pa.string())
            codes, names = pd.factorize(catalogue["category"].astype(object).fillna("<no category>"))
            self._category_codes = codes
            self._category_names = list(names)
            self._category_counts = np.zeros(len(names) + 1, dtype=np.int64)  # + unknown item

    def item_positions(self, table: pa.Table) -> np.ndarray | None:
        """Catalogue row of each event's item (-1 unknown, -2 no item); None without a catalogue."""
        if self._catalogue_ids is None:
            return None
        items = table["item_id"]
        positions = pc.index_in(items, value_set=self._catalogue_ids)
        out = positions.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        out[~np.asarray(items.is_valid())] = -2
        return out

    def add(self, table: pa.Table, keys: np.ndarray, item_positions: np.ndarray | None) -> None:
        n = table.num_rows
        if n == 0:
            return
        self.events += n
        times = table["event_time"]
        valid_time = np.asarray(times.is_valid())
        days = times.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False) // US_PER_DAY
        days = np.where(valid_time, days, np.iinfo(np.int64).min)
        values, counts = np.unique(days[valid_time], return_counts=True)
        for d, c in zip(values.tolist(), counts.tolist(), strict=True):
            self.day_counts[d] += c
        for row in pc.value_counts(table["event_type"]).to_pylist():
            self.event_types[row["values"] if row["values"] is not None else "<null>"] += row["counts"]
        prices = table["price"].to_numpy(zero_copy_only=False)
        positive = prices[prices > 0]
        if len(positive):
            self.price_hist += np.bincount(price_bins(positive), minlength=PRICE_BINS)
        if item_positions is not None:
            known = item_positions[item_positions >= 0]
            self._category_counts[:-1] += np.bincount(self._category_codes[known],
                                                      minlength=len(self._category_names))
            self._category_counts[-1] += int((item_positions == -1).sum())
        event_hash = row_hash(table, self.duplicate_columns)
        user_hash = _splitmix(column_hash(table["user_id"]) ^ _splitmix(days.view(np.uint64)))
        self.buckets.add(days[valid_time], event_hash[valid_time], user_hash[valid_time], keys[valid_time])

    def close_before(self, day: str | None) -> None:
        """Days before `day` (YYYY-MM-DD) are complete; None closes all."""
        if day is None:
            self.buckets.close_before(None)
        else:
            self.buckets.close_before(int(pd.Timestamp(day).value // 1000 // US_PER_DAY))

    def finish(self, interval: tuple[str | None, str | None]) -> tuple[BatchProfile, DuplicateStats]:
        self.buckets.close_before(None)
        categories: dict[str, int] = {}
        if self._catalogue_ids is not None:
            for name, count in zip(self._category_names + ["<unknown item>"], self._category_counts.tolist(),
                                   strict=True):
                if count:
                    categories[str(name)] = int(count)
        profile = BatchProfile(
            events=self.events,
            day_counts={_day_str(d): c for d, c in sorted(self.day_counts.items())},
            event_types=dict(self.event_types),
            categories=categories,
            price_hist={int(i): int(v) for i, v in enumerate(self.price_hist) if v},
            user_day_hist=self.buckets.user_day_hist.tolist(),
            interval=interval,
        )
        return profile, self.buckets.dups


def _day_str(day: int) -> str:
    return str((pd.Timestamp(0) + pd.Timedelta(days=int(day))).date())


# ---- drift ---------------------------------------------------------------------------------------

def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index, sum (p - q) ln(p / q): the symmetric KL divergence.

    Counts are smoothed with half an observation per bucket so an empty bucket gives a large but
    finite value instead of infinity.
    """
    ref = np.asarray(reference, dtype=float) + 0.5
    cur = np.asarray(current, dtype=float) + 0.5
    p, q = cur / cur.sum(), ref / ref.sum()
    return float(np.sum((p - q) * np.log(p / q)))


def mix_buckets(reference: dict[str, int], current: dict[str, int], top: int) -> tuple[list[str], np.ndarray,
                                                                                      np.ndarray]:
    """Top-`top` reference categories plus one `other` bucket, as aligned count arrays."""
    names = [k for k, _ in sorted(reference.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    chosen = set(names)
    ref = np.array([reference.get(n, 0) for n in names] + [sum(v for k, v in reference.items() if k not in chosen)])
    cur = np.array([current.get(n, 0) for n in names] + [sum(v for k, v in current.items() if k not in chosen)])
    if ref[-1] == 0 and cur[-1] == 0:
        return names, ref[:-1], cur[:-1]
    return names + ["<other>"], ref, cur


def price_buckets(reference: np.ndarray, current: np.ndarray) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Current prices in the reference's deciles (edges from the fine histogram)."""
    total = reference.sum()
    cum = np.cumsum(reference)
    edges = sorted({int(np.searchsorted(cum, total * q / 10, side="left")) for q in range(1, 10)})
    bounds = [0] + [e + 1 for e in edges] + [len(reference)]
    bounds = sorted(set(bounds))
    ref = np.array([reference[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    cur = np.array([current[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    return [bin_price(b) for b in bounds[1:-1]], ref, cur
