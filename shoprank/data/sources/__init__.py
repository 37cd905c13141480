"""Source adapters: each maps one raw format onto the canonical schema, chunk by chunk.

`open_source(name, path)` is the one entry point the pipeline, the CLI and the tests use.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pandas as pd


class Source(Protocol):
    """A shop's data as canonical frames (see shoprank.data.schema)."""

    name: str

    def events(self, chunk_rows: int = 500_000) -> Iterator[pd.DataFrame]: ...
    def items(self) -> pd.DataFrame: ...
    def users(self) -> pd.DataFrame: ...


SOURCES = ("tafeng", "rees46", "synthetic", "canonical", "served")


def open_source(name: str, path: str | Path | None = None, **options: object) -> Source:
    """Build the adapter for `name`; `path` is the raw file/folder (Ta Feng fetches its own)."""
    if name == "tafeng":
        from shoprank.data.sources.tafeng import TaFengSource

        return TaFengSource(path)
    if name == "rees46":
        from shoprank.data.sources.rees46 import Rees46Source

        if path is None:
            raise ValueError("the rees46 source needs a CSV path")
        return Rees46Source(path)
    if name == "synthetic":
        from shoprank.data.sources.synthetic import SyntheticSource

        return SyntheticSource(path, **options)  # type: ignore[arg-type]
    if name == "canonical":
        from shoprank.data.sources.canonical import CanonicalSource

        if path is None:
            raise ValueError("the canonical source needs a folder with events/ items/ users/")
        return CanonicalSource(path)
    if name == "served":
        from shoprank.data.sources.served import ServedSource

        return ServedSource(path, resolve=options.get("resolve"))  # type: ignore[arg-type]
    raise ValueError(f"unknown source {name!r}: expected one of {SOURCES}")
