"""What the sequence model reads, without TensorFlow: the shopper's item sequence and its padded
input. The feature job, the training step and the online API (which never loads TensorFlow) all
build the sequence here, so the model reads online the sequence it was trained on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PAD, OOV = 0, 1  # item indices 0 and 1; the vocabulary starts at 2


def item_sequences(train: pd.DataFrame, user: str = "user_id", last: int | None = None) -> pd.Series:
    """Each user's distinct items bought, in first-purchase order (ties by item id), the `last` of
    them: {user: [item, ...]}. The definition of the `user_item_sequence` Feast field too, which the
    feature job computes in SQL and the tests hold equal to this."""
    first = first_purchases(train, user)
    return first.groupby(user, sort=True)["item_id"].agg(lambda s: s.tolist()[-last:] if last else s.tolist())


def first_purchases(train: pd.DataFrame, user: str = "user_id") -> pd.DataFrame:
    """(user, item_id, event_time) of each user's first purchase of each item, in sequence order."""
    rows = train.loc[train["item_id"].notna()]
    if "event_type" in rows.columns:
        rows = rows[rows["event_type"] == "purchase"]
    first = rows.groupby([user, "item_id"], observed=True)["event_time"].min().reset_index()
    return first.sort_values([user, "event_time", "item_id"], kind="mergesort").reset_index(drop=True)


def pad_left(sequences: Sequence[Sequence], length: int, pad: object = PAD, dtype: object = np.int32) -> np.ndarray:
    """The last `length` entries of each sequence, right-aligned, `pad` before them (the newest item
    is always the last column, where the model reads the shopper's vector)."""
    out = np.full((len(sequences), length), pad, dtype=dtype)
    for row, seq in enumerate(sequences):
        tail = list(seq)[-length:]
        if tail:
            out[row, length - len(tail):] = tail
    return out


def history_input(sequences: Sequence[Sequence[str]], length: int) -> np.ndarray:
    """The exported model's `history` input: item ids oldest first, "" on the left."""
    return pad_left([[str(i) for i in seq] for seq in sequences], length, "", object)


def online_history(row: dict | None, carted: Sequence[str]) -> list[str]:
    """The sequence the online path sends: the user row's `user_item_sequence` (as of the last
    materialisation), then the live session's carted items not in it, oldest first (`carted` is
    newest first): the purchases the batch row has not seen yet are closest to what is carted now."""
    past = [str(i) for i in ((row or {}).get("user_item_sequence") or [])]
    seen = set(past)
    added = [str(i) for i in reversed(list(carted)) if str(i) not in seen]
    return past + list(dict.fromkeys(added))
