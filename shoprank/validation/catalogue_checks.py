"""The gate's catalogue checks, run on the items a merchandiser adds or changes during the day.

Why the gate's and not new ones: an item that reaches shoppers at noon must meet the same contract
as one that arrives with the nightly export (gate.toml's `items.*` checks, in Great Expectations),
or the night would refuse what the day already served. The difference is strictness: the nightly
tolerates a share of bad rows (`mostly`); an item added by hand stands alone, so every row that
breaks a check of severity `fail` refuses the batch, and the error names the source, the row and
the field.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from shoprank.data.schema import ITEMS, conform
from shoprank.validation.config import load_config
from shoprank.validation.suites import Bounds

__all__ = ["catalogue_errors"]

_LOOSE = pa.schema([f.with_nullable(True) for f in ITEMS])


def catalogue_errors(items: pd.DataFrame, source: str, config_path: str | Path | None = None,
                     max_rows_named: int = 5) -> list[str]:
    """What is wrong with `items` (columns of the catalogue schema), one line per broken check,
    naming the rows (1-based, in the order given) and the field; empty when every row passes."""
    from shoprank.validation.runner import GeRunner, quiet_ge, to_frame  # Great Expectations: loaded on use

    try:
        table = conform(items, _LOOSE)  # nulls reach the checks, which name their rows
    except (ValueError, TypeError) as err:
        return [f"{source}: {err}"]
    config = load_config(config_path)
    frame = to_frame(table, np.arange(table.num_rows))
    with quiet_ge():
        runner = GeRunner(config, Bounds(None, None, pd.Timestamp.now(tz="UTC")), max_rows_named)

        def describe(chunk: pd.DataFrame, key, column: str) -> str:
            value = chunk.loc[key, column] if column in chunk.columns else None
            shown = "null" if pd.isna(value) else repr(value) if isinstance(value, str) else str(value)
            return f"row {int(key) + 1} ({column}={shown})"

        runner.validate("items", frame, describe)
    errors = []
    for check_id, tally in runner.tallies.items():
        if tally.check.table != "items" or tally.config.severity != "fail":
            continue
        if tally.error:
            errors.append(f"{source}: check {check_id} could not run: {tally.error}")
        elif tally.unexpected:
            errors.append(f"{source}: field {tally.check.column}: expected {tally.check.expected}; "
                          f"{tally.unexpected} row(s) {tally.check.violation}: {', '.join(tally.samples)}")
    return errors
