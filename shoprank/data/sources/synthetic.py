"""A seeded synthetic shop: long-tail popularity, categories, brands, prices, sessions with
view -> cart -> purchase funnels, and search queries.

Events are generated chunk by chunk from a per-chunk seed, so 10M events never sit in memory and
any chunk can be regenerated alone. Chunk `i` covers the i-th slice of the time range, so chunks
arrive in time order and land in date partitions naturally.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from shoprank.data.schema import EVENTS, ITEMS, USERS, conform

DEPARTMENTS = ["electronics", "apparel", "home", "grocery", "sports", "beauty", "toys", "books"]
SUBJECTS = ["phone", "shirt", "lamp", "coffee", "ball", "cream", "puzzle", "novel", "cable", "shoe",
            "chair", "tea", "racket", "soap", "robot", "atlas", "tablet", "jacket", "rug", "pasta"]
BRANDS = ["acme", "zenith", "nova", "orbit", "lumen", "terra", "vivo", "pico", "astra", "boreal",
          "kappa", "delta", "sigma", "atlas", "helix", "quark", "ember", "frost", "gale", "haven"]
ADJECTIVES = ["classic", "pro", "mini", "max", "eco", "smart", "soft", "ultra", "basic", "deluxe"]
AGE_GROUPS = ["<25", "25-34", "35-44", "45-54", "55-64", ">65"]


@dataclass(frozen=True)
class SyntheticShop:
    """Sizes of the shop; everything else follows from the seed."""

    n_events: int = 100_000
    n_users: int = 5_000
    n_items: int = 2_000
    n_categories: int = 40
    start: str = "2024-01-01"
    days: int = 28
    seed: int = 7
    chunk_events: int = 500_000


class SyntheticSource:
    """Canonical frames from a SyntheticShop. `path` is unused (kept for the adapter signature)."""

    name = "synthetic"

    def __init__(self, path: str | Path | None = None, **sizes: int | str) -> None:
        self.shop = SyntheticShop(**sizes)  # type: ignore[arg-type]

    @cached_property
    def _catalogue(self) -> pd.DataFrame:
        shop = self.shop
        rng = np.random.default_rng(shop.seed)
        cats = np.sort(rng.integers(0, shop.n_categories, shop.n_items))
        dept = np.array(DEPARTMENTS)[cats % len(DEPARTMENTS)]
        subject = np.array(SUBJECTS)[cats % len(SUBJECTS)]
        brand = np.array(BRANDS)[rng.integers(0, len(BRANDS), shop.n_items)]
        adjective = np.array(ADJECTIVES)[rng.integers(0, len(ADJECTIVES), shop.n_items)]
        price = np.round(np.exp(rng.normal(3.0 + (cats % 5) * 0.4, 0.6)), 2)
        return pd.DataFrame(
            {
                "item_id": [f"i{n}" for n in range(shop.n_items)],
                "category": [f"{d}.{s}{c}" for d, s, c in zip(dept, subject, cats, strict=True)],
                "brand": brand,
                "price": price,
                "title": [f"{b} {s} {a}" for b, s, a in zip(brand, subject, adjective, strict=True)],
                "_cat": cats,
            }
        )

    def items(self) -> pd.DataFrame:
        return self._catalogue[ITEMS.names].copy()

    def users(self) -> pd.DataFrame:
        rng = np.random.default_rng(self.shop.seed + 1)
        n = self.shop.n_users
        return pd.DataFrame(
            {
                "user_id": [f"u{n}" for n in range(n)],
                "age_group": np.array(AGE_GROUPS)[rng.integers(0, len(AGE_GROUPS), n)],
                "region": [f"r{r}" for r in rng.integers(0, 8, n)],
            }
        )

    def n_chunks(self) -> int:
        return max(1, -(-self.shop.n_events // self.shop.chunk_events))

    def _chunk(self, index: int, n_events: int) -> pd.DataFrame:
        shop, cat = self.shop, self._catalogue
        rng = np.random.default_rng([shop.seed, index])
        # Funnel expansion only adds rows, so n_events base rows always suffice; trimmed at the end.
        n_base = max(1, n_events)
        lengths = np.minimum(1 + rng.geometric(0.25, size=n_base // 4 + 1), 30)
        lengths = lengths[: np.searchsorted(np.cumsum(lengths), n_base) + 1]
        n_sessions = len(lengths)
        # Heavy users: user index drawn from a power law over users.
        users = np.minimum((shop.n_users * rng.power(0.35, n_sessions)).astype(int), shop.n_users - 1)
        span = pd.Timedelta(days=shop.days) / self.n_chunks()
        t0 = pd.Timestamp(shop.start, tz="UTC") + span * index
        starts = t0.value // 1000 + (rng.random(n_sessions) * (span.value // 1000)).astype(np.int64)
        session_cat = (users * 7 + rng.integers(0, 3, n_sessions)) % shop.n_categories
        row_session = np.repeat(np.arange(n_sessions), lengths)
        position = np.arange(len(row_session)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        cat_codes = cat["_cat"].to_numpy()
        cat_start = np.searchsorted(cat_codes, np.arange(shop.n_categories))
        cat_count = np.searchsorted(cat_codes, np.arange(shop.n_categories), side="right") - cat_start
        row_cat = session_cat[row_session]
        # Mostly stay in the session's category; long tail inside it (u^3 skews to low ranks).
        wander = rng.random(len(row_session)) < 0.15
        row_cat = np.where(wander, rng.integers(0, shop.n_categories, len(row_session)), row_cat)
        row_cat = np.where(cat_count[row_cat] == 0, cat_codes[0], row_cat)
        rank = (cat_count[row_cat] * rng.random(len(row_session)) ** 3).astype(int)
        item_idx = cat_start[row_cat] + np.minimum(rank, cat_count[row_cat] - 1)
        times = starts[row_session] + position * 40_000_000
        is_search = (position == 0) & (rng.random(len(row_session)) < 0.3)
        frames = [
            pd.DataFrame({"session": row_session, "item": item_idx, "time": times,
                          "type": np.where(is_search, "search", "view")})
        ]
        views = frames[0][~is_search]
        carts = views[rng.random(len(views)) < 0.08].assign(type="cart")
        carts["time"] += 20_000_000
        buys = carts[rng.random(len(carts)) < 0.45].assign(type="purchase")
        buys["time"] += 20_000_000
        rows = pd.concat([frames[0], carts, buys], ignore_index=True).sort_values("time", kind="stable")
        rows = rows.iloc[:n_events]
        items = cat.iloc[rows["item"].to_numpy()]
        search = (rows["type"] == "search").to_numpy()
        subject_words = items["category"].str.split(".").str[1].str.rstrip("0123456789").to_numpy()
        query = np.where(search, subject_words + np.where(rng.random(len(rows)) < 0.5,
                                                          " " + items["brand"].to_numpy(), ""), None)
        price = items["price"].to_numpy() * rng.uniform(0.95, 1.05, len(rows)).round(2)
        return pd.DataFrame(
            {
                "event_time": pd.to_datetime(rows["time"].to_numpy(), unit="us", utc=True),
                "user_id": np.char.add("u", users[rows["session"].to_numpy()].astype(str)),
                "item_id": np.where(search, None, items["item_id"].to_numpy()),
                "event_type": rows["type"].to_numpy(),
                "price": np.where(search, np.nan, np.round(price, 2)),
                "quantity": np.where(search, 0, 1),
                "session_id": np.char.add(f"s{index}-", rows["session"].to_numpy().astype(str)),
                "query": query,
            }
        ).astype({"quantity": "Int64"}).assign(quantity=lambda d: d["quantity"].mask(search))

    def events(self, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
        """Chunks in time order; `chunk_rows` is ignored: chunking is part of the seeded shop."""
        remaining = self.shop.n_events
        for index in range(self.n_chunks()):
            size = min(self.shop.chunk_events, remaining)
            remaining -= size
            yield self._chunk(index, size)


def write_synthetic(out_dir: str | Path, progress: bool = True, **sizes: int | str) -> Path:
    """Write a canonical folder (events partitioned by date, items, users), chunk by chunk."""
    out = Path(out_dir)
    source = SyntheticSource(**sizes)
    (out / "items").mkdir(parents=True, exist_ok=True)
    (out / "users").mkdir(parents=True, exist_ok=True)
    pq.write_table(conform(source.items(), ITEMS), out / "items" / "part-0.parquet")
    pq.write_table(conform(source.users(), USERS), out / "users" / "part-0.parquet")
    bar = tqdm(total=source.shop.n_events, unit="ev", desc="synthetic", disable=not progress)
    for index, chunk in enumerate(source.events()):
        dates = chunk["event_time"].dt.strftime("%Y-%m-%d")
        for date, part in chunk.groupby(dates, sort=True):
            folder = out / "events" / f"date={date}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(conform(part, EVENTS), folder / f"part-{index:05d}.parquet")
        bar.update(len(chunk))
        del chunk
    bar.close()
    return out


__all__ = ["SyntheticShop", "SyntheticSource", "write_synthetic", "pa"]
