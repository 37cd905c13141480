"""The ranker trained from a parts file streamed part by part learns what it learns from the rows in memory."""

import pandas as pd
import pytest

from shoprank.features.example_parts import ExampleParts, PartWriter
from shoprank.models.train import TrainConfig, train_ranker
from tests.conftest import tiny_examples


def test_streamed_parts_train_as_well_as_the_same_rows_in_memory(tmp_path):
    parts = [tiny_examples(800, seed=s).assign(split="train") for s in (10, 11, 12)]
    validation = tiny_examples(400, seed=1).assign(split="validation")
    path = tmp_path / "examples.parquet"
    with PartWriter(path) as writer:
        for part in parts:
            writer.write(part)
    config = TrainConfig(epochs=3, batch_size=128, monitor="val_auc")

    streamed = train_ranker(ExampleParts(path, "train"), validation, config, verbose=0)
    in_memory = train_ranker(pd.concat(parts, ignore_index=True), validation, config, verbose=0)

    assert streamed.extra["streamed"] == {"parts": 3, "rows": 2400, "batches_per_epoch": 18}
    best_streamed, best_in_memory = max(streamed.history["val_auc"]), max(in_memory.history["val_auc"])
    assert best_streamed > 0.75  # the label follows ui_score: a model that saw the rows learns it
    assert abs(best_streamed - best_in_memory) < 0.03
    assert streamed.examples_per_second > 0


def test_streamed_training_refuses_a_first_part_with_one_label(tmp_path):
    path = tmp_path / "examples.parquet"
    with PartWriter(path) as writer:
        writer.write(tiny_examples(200).assign(split="train", label=0))
    with pytest.raises(ValueError, match=r"in its first part, labels \[0\]"):
        train_ranker(ExampleParts(path, "train"), tiny_examples(100, seed=1), TrainConfig(epochs=1), verbose=0)
