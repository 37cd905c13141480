"""The lexical index over the catalogue: BM25 (bm25s) over title, category path words and brand.

bm25s keeps the index as a sparse matrix in numpy: scoring a query is a sum over a few rows, which
serves hundreds of queries a second per core without a server, and the whole catalogue is
re-indexed in seconds each night, so its lack of incremental updates costs nothing here (tantivy's
incremental commits would only matter for intra-day catalogue changes). The per-field token sets
are kept beside it for the ranker's match features (which field matched, exact category/brand).

An index version is a folder: `bm25/` (bm25s' own files), `items.parquet` (one row per item, in
index order, sorted by item id), and `manifest.json`, written last. `publish_index` uploads it as
`<models>/search_index/<n>/` with the manifest last, so a reader that finds the manifest finds a
complete version, like TF Serving with `saved_model.pb`; the API loads the newest complete one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shoprank.locks import StoreLock
from shoprank.search.text import tokens
from shoprank.storage import ObjectStore, put_dir, replacing_dir

INDEX_NAME = "search_index"  # folder under the model base path, beside the models
MANIFEST = "manifest.json"
FORMAT = 1  # bump when the folder layout or the tokeniser changes meaning
FIELDS = ("title", "category", "brand")


def item_field_text(items: pd.DataFrame) -> dict[str, pd.Series]:
    """The indexed text of each field. The category path's separators are word breaks."""
    return {name: items[name].fillna("").astype(str) if name in items else pd.Series("", index=items.index)
            for name in FIELDS}


@dataclass(frozen=True)
class Lexical:
    """The lexical stage's answer: index rows in order (BM25 desc, popularity desc, item id) and their
    BM25 scores; `tied` marks a row whose BM25 equals the previous row's (popularity placed it)."""

    rows: np.ndarray
    bm25: np.ndarray
    tied: np.ndarray
    n_matched: int


class SearchIndex:
    def __init__(self, retriever, items: pd.DataFrame, manifest: dict) -> None:
        self.retriever = retriever
        self.manifest = manifest
        self.item_ids = items["item_id"].astype(str).to_numpy(dtype=object)
        self.position = {item: i for i, item in enumerate(self.item_ids)}
        self.category = items["category"].fillna("").astype(str).to_numpy(dtype=object)
        self.brand = items["brand"].fillna("").astype(str).to_numpy(dtype=object)
        self.popularity = items["popularity"].fillna(0.0).to_numpy(dtype="float64")
        self.field_tokens = {f: [frozenset(v) for v in items[f"{f}_tokens"]] for f in FIELDS}
        # which index row each brand string names (brand affinity: a user's items -> their brands)
        self.brand_of = dict(zip(self.item_ids, self.brand, strict=True))

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def version(self) -> int | None:
        return self.manifest.get("version")

    # ---- build ----------------------------------------------------------------------------
    @classmethod
    def build(cls, items: pd.DataFrame, popularity: Mapping[str, float] | None = None,
              show_progress: bool = False) -> SearchIndex:
        """Index every catalogue item (no interactions needed: a new item is findable by its text)."""
        import bm25s

        if items.empty:
            raise ValueError("cannot index an empty catalogue")
        frame = items.drop_duplicates("item_id", keep="last").copy()
        frame["item_id"] = frame["item_id"].astype(str)
        frame = frame.sort_values("item_id").reset_index(drop=True)
        for column in ("category", "brand"):
            if column not in frame:
                frame[column] = None
        text = item_field_text(frame)
        for name in FIELDS:
            frame[f"{name}_tokens"] = [tokens(v) for v in text[name]]
        documents = [t + c + b for t, c, b in zip(frame["title_tokens"], frame["category_tokens"],
                                                   frame["brand_tokens"], strict=True)]
        retriever = bm25s.BM25()
        retriever.index(documents, show_progress=show_progress)
        pop = popularity or {}
        frame["popularity"] = [float(pop.get(i, 0.0)) for i in frame["item_id"]]
        keep = ["item_id", "category", "brand", "popularity", *(f"{f}_tokens" for f in FIELDS)]
        manifest = {"format": FORMAT, "items": len(frame), "vocabulary": len(retriever.vocab_dict),
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return cls(retriever, frame[keep], manifest)

    # ---- query ----------------------------------------------------------------------------
    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """BM25 of every item for the query (0 where nothing matches)."""
        if not query_tokens:
            return np.zeros(len(self), dtype="float32")
        return self.retriever.get_scores(query_tokens)

    def lexical(self, query_tokens: list[str], n: int, scores: np.ndarray | None = None) -> Lexical:
        """The top `n` matching items by BM25, ties by popularity, then item id (index order)."""
        scores = self.scores(query_tokens) if scores is None else scores
        matched = np.flatnonzero(scores > 0)
        if matched.size == 0:
            empty = np.zeros(0, dtype=np.int64)
            return Lexical(empty, np.zeros(0, dtype="float32"), np.zeros(0, dtype=bool), 0)
        bm25 = scores[matched]
        if matched.size > 4 * n:  # cut to the n best by BM25 first, keeping every item tied at the n-th
            threshold = np.partition(bm25, matched.size - n)[matched.size - n]
            keep = bm25 >= threshold
            matched, bm25 = matched[keep], bm25[keep]
        order = np.lexsort((matched, -self.popularity[matched], -bm25))[:n]
        rows, top = matched[order], bm25[order]
        tied = np.r_[False, np.isclose(top[1:], top[:-1])] if len(top) else np.zeros(0, dtype=bool)
        return Lexical(rows, top, tied, int(np.count_nonzero(scores > 0)))

    def rows_of(self, item_ids) -> np.ndarray:
        """Index rows of item ids (-1 for items not in the index)."""
        return np.fromiter((self.position.get(str(i), -1) for i in item_ids), dtype=np.int64)

    # ---- files ----------------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """Write the version folder through a scratch sibling (never half-written)."""
        folder = Path(folder)
        with replacing_dir(folder) as tmp:
            self.retriever.save(str(tmp / "bm25"), show_progress=False)
            frame = pd.DataFrame({"item_id": self.item_ids, "category": self.category, "brand": self.brand,
                                  "popularity": self.popularity,
                                  **{f"{f}_tokens": [sorted(s) for s in self.field_tokens[f]] for f in FIELDS}})
            frame.to_parquet(tmp / "items.parquet", index=False)
            (tmp / MANIFEST).write_text(json.dumps(self.manifest, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path) -> SearchIndex:
        import bm25s

        folder = Path(folder)
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            raise FileNotFoundError(f"{folder} is not a complete search index (no {MANIFEST})")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{folder}: index format {manifest.get('format')}, this code reads {FORMAT}")
        retriever = bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
        items = pd.read_parquet(folder / "items.parquet")
        if len(items) != manifest.get("items"):
            raise ValueError(f"{folder}: items.parquet has {len(items)} rows, "
                             f"the manifest says {manifest.get('items')}")
        return cls(retriever, items, manifest)


# ---- versions in the object store ------------------------------------------------------------
def index_versions(store: ObjectStore) -> list[int]:
    """Complete index versions (their manifest is there), oldest first."""
    out = set()
    for key in store.list(f"{INDEX_NAME}/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == MANIFEST and parts[1].isdigit():
            out.add(int(parts[1]))
    return sorted(out)


def publish_index(store: ObjectStore, folder: Path, lineage: Mapping[str, object], keep: int = 5) -> int:
    """Upload a saved index as the next version, manifest last; prune all but the newest `keep`."""

    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        raise FileNotFoundError(f"{folder} is not a saved search index (no {MANIFEST})")
    with StoreLock(store, f"model-{INDEX_NAME}", "publish search index", lease_s=300, wait_s=600):
        existing = index_versions(store)
        # numbers of versions whose upload died are skipped too: their files may still be there
        partial = [int(k.split("/")[1]) for k in store.list(f"{INDEX_NAME}/") if k.split("/")[1].isdigit()]
        version = max([0, *existing, *partial]) + 1
        manifest = {**json.loads((folder / MANIFEST).read_text()), "version": version, "lineage": dict(lineage)}
        put_dir(store, f"{INDEX_NAME}/{version}", folder, MANIFEST,
                json.dumps(manifest, indent=2, default=str).encode())
        complete = index_versions(store)
        for old in complete[:-keep] if keep > 0 else []:
            store.delete_prefix(f"{INDEX_NAME}/{old}/")
        for number in set(partial) - set(complete):
            if number < version:  # an upload that died before its manifest: never served
                store.delete_prefix(f"{INDEX_NAME}/{number}/")
    return version


def load_version(store: ObjectStore, version: int, local_copy: Callable[[str], str]) -> SearchIndex:
    """Load one published version; `local_copy(prefix)` gives a local folder holding it."""
    index = SearchIndex.load(Path(local_copy(f"{INDEX_NAME}/{version}")))
    index.manifest.setdefault("version", version)
    return index
