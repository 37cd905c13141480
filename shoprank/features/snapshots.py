"""What a feature snapshot is: when snapshots are taken, what they look back on, how interactions weigh.

Each snapshot at time T looks only at events strictly before T, and Feast joins a training example
to the latest snapshot at or before the example's time: together that makes the training set
point-in-time correct (no feature ever sees its own label period). The feature job
(`features/engine/`) computes the snapshots; these are the definitions it and its readers share.
"""

from __future__ import annotations

import pandas as pd

from shoprank.features.definitions import ITEM_SCHEMA, USER_SCHEMA

# How much each kind of interaction says about wanting an item (purchase is the target).
INTERACTION_WEIGHT = {"purchase": 1.0, "cart": 0.5, "view": 0.1}
TOP_ITEMS = 100
SEQUENCE_ITEMS = 50  # the sequence model's history length (`SequenceConfig.max_len`)
TOP_CATEGORIES = 5
LOOKBACK = pd.Timedelta(days=120)
DECAY_HALF_LIFE_DAYS = 21.0  # time-decayed purchase counts (recent repurchases weigh more)

# The feature lists are the Feast schemas' (features/definitions.py): one list, so a snapshot can
# never carry a column Feast does not know, nor Feast expect one the snapshots lack.
USER_FEATURES = [f.name for f in USER_SCHEMA]
ITEM_FEATURES = [f.name for f in ITEM_SCHEMA]


def snapshot_times(end: pd.Timestamp, n_snapshots: int, step_days: int = 7) -> list[pd.Timestamp]:
    """Snapshot times ending at `end` (midnight), oldest first."""
    end = end.normalize()
    return [end - pd.Timedelta(days=step_days * k) for k in reversed(range(n_snapshots))]
